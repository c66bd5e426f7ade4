// Swap in the newest photo when one lands, and keep the offline banner current,
// without reloading the page.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const every = Math.max(1000, parseInt(live.dataset.every, 10) || 10000);
  function show(id, visible) {
    document.getElementById(id).hidden = !visible;
  }
  async function poll() {
    try {
      const response = await fetch(live.dataset.poll, { credentials: "same-origin", cache: "no-store" });
      if (response.redirected || !response.ok) return;
      const latest = await response.json();
      show("offline", latest.offline || latest.late);
      show("banner-offline", latest.offline);
      show("banner-late", !latest.offline && latest.late);
      if (!latest.name || latest.name === live.dataset.latest) {
        if (latest.ago) document.getElementById("hero-ago").textContent = latest.ago;
        return;
      }
      const hero = document.getElementById("hero");
      if (!hero) {
        window.location.reload(); // the very first photo: draw the whole page
        return;
      }
      live.dataset.latest = latest.name;
      hero.dataset.latest = latest.name;
      document.getElementById("hero-img").src = latest.photo;
      document.getElementById("hero-link").href = latest.page;
      document.getElementById("hero-when").textContent = latest.taken;
      document.getElementById("hero-ago").textContent = latest.ago;
    } catch (error) {
      // The camera's network blinked; the next poll tries again.
    }
  }
  setInterval(poll, every);
})();
