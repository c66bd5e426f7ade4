// Swap in the newest photo when one lands, without reloading the page.
"use strict";
(function () {
  const hero = document.getElementById("hero");
  if (!hero) return;
  const every = Math.max(1000, parseInt(hero.dataset.every, 10) || 10000);
  async function poll() {
    try {
      const response = await fetch(hero.dataset.poll, { credentials: "same-origin", cache: "no-store" });
      if (response.redirected || !response.ok) return;
      const latest = await response.json();
      document.getElementById("offline").hidden = !(latest.offline || latest.late);
      if (!latest.name) return;
      document.getElementById("hero-ago").textContent = latest.ago;
      if (latest.name === hero.dataset.latest) return;
      hero.dataset.latest = latest.name;
      document.getElementById("hero-img").src = latest.photo;
      document.getElementById("hero-link").href = latest.page;
      document.getElementById("hero-when").textContent = latest.taken;
    } catch (error) {
      // The camera's network blinked; the next poll tries again.
    }
  }
  setInterval(poll, every);
})();
