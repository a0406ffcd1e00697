// "Open in a new window" (templates/cookie_blocked.html): the first click opens the named window on the
// launch URL; a later click only brings that window forward. Navigating it again would send the EHR's
// single-use launch id a second time and the EHR would refuse the second sign-in.
(function () {
  "use strict";
  var link = document.getElementById("open-launch-window");
  if (!link) { return; }
  var opened = false;
  link.addEventListener("click", function (event) {
    if (!opened) { opened = true; return; }
    event.preventDefault();
    var existing = window.open("", link.target);  // an empty URL returns the named window without navigating it
    if (existing) { existing.focus(); }
  });
})();
