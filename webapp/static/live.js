// Live page: the stream is a plain <img>; this only shows state, frame rate, and a way
// to go on after live.max_minutes.
(function () {
  "use strict";
  var view = document.getElementById("live-view");
  if (!view) { return; }
  var img = document.getElementById("live-img");
  var fps = document.getElementById("live-fps");
  var offline = document.getElementById("live-offline");
  var starting = document.getElementById("live-starting");
  var ended = document.getElementById("live-ended");
  var minutes = parseFloat(view.dataset.minutes);
  var timer = null;

  function schedule() {
    ended.hidden = true;
    clearTimeout(timer);
    timer = setTimeout(function () { ended.hidden = false; }, minutes * 60000);
  }
  function poll() {
    fetch(view.dataset.status, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) { return; }
        fps.textContent = s.fps.toFixed(1) + " " + fps.dataset.label;
        offline.hidden = s.online !== false;
        starting.hidden = !(s.online === null || (s.online && s.fps === 0));
      })
      .catch(function () {});
  }
  document.getElementById("live-continue").addEventListener("click", function () {
    img.src = view.dataset.stream + "?t=" + Date.now();
    schedule();
  });
  schedule();
  poll();
  setInterval(poll, 1000);
})();
