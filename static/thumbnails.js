// Study thumbnails (templates/_thumbnail.html): fixed 64 x 64 boxes, loaded lazily by the browser;
// one that fails to load (404: none offered, or any error) is replaced by a neutral placeholder.
// No inline handlers (CSP script-src 'self'); sizes set through the CSSOM (CSP style-src 'self').
(function () {
  "use strict";
  var SIZE = "64px";

  function box(element) {
    element.style.width = SIZE;
    element.style.height = SIZE;
    element.style.objectFit = "contain";
    element.style.flex = "0 0 " + SIZE;
  }

  function placeholder(img) {
    var span = document.createElement("span");
    span.className = "study-thumbnail thumbnail-placeholder";
    span.setAttribute("role", "img");
    span.setAttribute("aria-label", "No preview");
    span.setAttribute("data-thumbnail-placeholder", "");
    span.style.display = "inline-block";
    span.style.background = "#e5e7eb";
    span.style.borderRadius = "4px";
    box(span);
    if (img.parentNode) img.parentNode.replaceChild(span, img);
  }

  function watch(img) {
    box(img);
    if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) {
      placeholder(img);  // failed before this script ran
      return;
    }
    img.addEventListener("error", function () { placeholder(img); }, { once: true });
  }

  function init(root) {
    root.querySelectorAll("img[data-thumbnail]").forEach(watch);
    root.querySelectorAll("[data-thumbnail-placeholder]").forEach(function (span) {
      span.style.display = "inline-block";
      span.style.background = "#e5e7eb";
      span.style.borderRadius = "4px";
      box(span);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { init(document); });
  } else {
    init(document);
  }
  // rows added later (Show older studies, a re-rendered list) get the same treatment
  new MutationObserver(function (records) {
    records.forEach(function (record) {
      record.addedNodes.forEach(function (node) { if (node.nodeType === 1) init(node); });
    });
  }).observe(document.documentElement, { childList: true, subtree: true });
})();
