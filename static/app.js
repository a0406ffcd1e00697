// Study list behaviour: show a study in the viewer frame without reloading, filter, keyboard navigation.
// Viewer URLs come from the server (data-viewer-url), built only for studies of this launch.
(function () {
  "use strict";
  var list = document.getElementById("study-list");
  var frame = document.getElementById("viewer-frame");
  var openNew = document.getElementById("viewer-open-new");
  var title = document.getElementById("viewer-title");
  var placeholder = document.getElementById("viewer-placeholder");
  var modalitySelect = document.getElementById("filter-modality");
  var textInput = document.getElementById("filter-text");
  var count = document.getElementById("study-count");
  var noMatch = document.getElementById("no-match");
  var compareHint = document.getElementById("compare-hint");
  var narrow = window.matchMedia("(max-width: 900px)");
  if (!list) { return; }

  function rows() { return Array.prototype.slice.call(list.querySelectorAll("li.study")); }

  function load(url, label) {
    frame.src = url;
    frame.classList.remove("hidden");
    placeholder.classList.add("hidden");
    openNew.href = url;
    openNew.classList.remove("hidden");
    title.textContent = label;
    if (narrow.matches) { frame.scrollIntoView({ block: "start" }); }  // viewer is below the list
  }

  function show(link) {
    var url = link.getAttribute("data-viewer-url");
    var row = link.closest("li.study");
    if (!url || !frame) { return false; }
    rows().forEach(function (r) { r.classList.remove("selected"); });
    row.classList.add("selected");
    load(url, row.querySelector(".desc").textContent + " " + row.querySelector(".date").textContent);
    history.replaceState(null, "", link.getAttribute("href"));
    return true;
  }

  var allLink = document.getElementById("all-imaging");
  if (allLink && frame) {
    allLink.addEventListener("click", function (event) {
      event.preventDefault();
      rows().forEach(function (r) { r.classList.remove("selected"); });
      load(allLink.getAttribute("data-viewer-url"), "All imaging of this patient");
    });
  }

  list.addEventListener("click", function (event) {
    var link = event.target.closest("a.study-link");
    if (link && !event.ctrlKey && !event.metaKey && !event.shiftKey && show(link)) {
      event.preventDefault();
    }
  });

  list.addEventListener("keydown", function (event) {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") { return; }
    var links = rows().filter(function (r) { return !r.hidden; }).map(function (r) { return r.querySelector("a.study-link"); });
    var index = links.indexOf(document.activeElement);
    if (index < 0) { return; }
    var next = links[index + (event.key === "ArrowDown" ? 1 : -1)];
    if (next) { next.focus(); event.preventDefault(); }
  });

  // The filter is the server's (one implementation: /l/<launch>/matches); here its answer only hides rows.
  var matchesUrl = document.querySelector(".app").getAttribute("data-matches-url");
  var pending = null;
  var generation = 0;
  function applyFilter() {
    var modality = modalitySelect ? modalitySelect.value : "";
    var text = textInput ? textInput.value : "";
    var mine = ++generation;
    if (pending) { pending.abort(); }
    pending = new AbortController();
    var query = "?modality=" + encodeURIComponent(modality) + "&q=" + encodeURIComponent(text);
    fetch(matchesUrl + query, { credentials: "same-origin", signal: pending.signal, headers: { "Accept": "application/json" } })
      .then(function (response) { if (!response.ok) { throw new Error("HTTP " + response.status); } return response.json(); })
      .then(function (answer) {
        if (mine !== generation) { return; }
        var keep = {};
        answer.ids.forEach(function (id) { keep[id] = true; });
        var visible = 0;
        rows().forEach(function (row) {
          var ok = keep[row.getAttribute("data-study-id")] === true;
          row.hidden = !ok;
          if (ok) { visible += 1; }
        });
        if (count) { count.textContent = String(visible); }
        if (noMatch) { noMatch.classList.toggle("hidden", visible > 0); }
      })
      .catch(function (error) { if (error.name !== "AbortError" && modalitySelect) { modalitySelect.form.submit(); } });
  }
  var debounce = null;
  function applyFilterSoon() { clearTimeout(debounce); debounce = setTimeout(applyFilter, 120); }

  list.addEventListener("change", function (event) {
    if (!event.target.classList.contains("compare") || !compareHint) { return; }
    var max = parseInt(compareHint.getAttribute("data-max"), 10);
    if (list.querySelectorAll("input.compare:checked").length > max) {
      event.target.checked = false;
      compareHint.textContent = "At most " + max + " studies can be compared";
    }
  });
  // The whole unfiltered list is on the page: hide the rows the server's filter leaves out, in place.
  // Otherwise (only the newest rows, or a filter already applied) the form reloads the page with the
  // server's answer (the modality choice submits; the text is submitted with Enter).
  var complete = list.getAttribute("data-complete") === "true";
  if (modalitySelect) {
    modalitySelect.addEventListener("change", complete ? applyFilter : function () { modalitySelect.form.submit(); });
  }
  if (textInput && complete) { textInput.addEventListener("input", applyFilterSoon); }
})();
