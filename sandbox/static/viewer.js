// Sandbox PACS viewer: step through the frames of each series with buttons or arrow keys.
(function () {
  "use strict";
  var FRAME_MS = 67;  // about 15 frames per second
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
    // Cine: a play/pause toggle (a real button: Tab reaches it, Enter/Space press it; "k" on the figure too).
    // Playing never moves focus, so a framed viewer leaves the app's list in charge of the keyboard.
    var play = figure.querySelector("button.play");
    var timer = null;
    function setPlaying(on) {
      if (!play) { return; }
      if (timer) { window.clearInterval(timer); timer = null; }
      if (on) { timer = window.setInterval(function () { show(index + 1); }, FRAME_MS); }
      play.setAttribute("aria-pressed", on ? "true" : "false");
      play.textContent = on ? "Pause cine" : "Play cine";
      figure.setAttribute("data-playing", on ? "true" : "false");
    }
    if (play) { play.addEventListener("click", function () { setPlaying(!timer); }); }
    figure.querySelectorAll("button[data-step]").forEach(function (button) {
      button.addEventListener("click", function () {
        setPlaying(false);
        show(index + parseInt(button.getAttribute("data-step"), 10));
      });
    });
    figure.addEventListener("keydown", function (event) {
      if (event.key === "ArrowRight" || event.key === "ArrowDown") { show(index + 1); event.preventDefault(); }
      if (event.key === "ArrowLeft" || event.key === "ArrowUp") { show(index - 1); event.preventDefault(); }
      if (event.key === "Home") { show(0); event.preventDefault(); }
      if (event.key === "End") { show(frames.length - 1); event.preventDefault(); }
      if (event.key === "k" && event.target === figure) { setPlaying(!timer); event.preventDefault(); }
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
