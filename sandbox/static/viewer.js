// Sandbox PACS viewer: step through the frames of each series with buttons or arrow keys.
(function () {
  "use strict";
  function setup(figure) {
    var frames = JSON.parse(figure.getAttribute("data-frames") || "[]");
    var img = figure.querySelector("img");
    var counter = figure.querySelector(".counter");
    var index = 0;
    function show(next) {
      if (!frames.length) { return; }
      index = (next + frames.length) % frames.length;
      img.src = frames[index];
      counter.textContent = (index + 1) + " / " + frames.length;
    }
    figure.querySelectorAll("button[data-step]").forEach(function (button) {
      button.addEventListener("click", function () {
        show(index + parseInt(button.getAttribute("data-step"), 10));
      });
    });
    figure.addEventListener("keydown", function (event) {
      if (event.key === "ArrowRight" || event.key === "ArrowDown") { show(index + 1); event.preventDefault(); }
      if (event.key === "ArrowLeft" || event.key === "ArrowUp") { show(index - 1); event.preventDefault(); }
      if (event.key === "Home") { show(0); event.preventDefault(); }
      if (event.key === "End") { show(frames.length - 1); event.preventDefault(); }
    });
    figure.addEventListener("wheel", function (event) {
      if (frames.length > 1) { show(index + (event.deltaY > 0 ? 1 : -1)); event.preventDefault(); }
    }, { passive: false });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("figure.series").forEach(setup);
    // Focus the first series only when the viewer is its own window: framed in an app, focus stays where the
    // clinician is (the app's study list).
    var first = document.querySelector("figure.series");
    if (first && window.top === window) { first.focus({ preventScroll: true }); }
  });
})();
