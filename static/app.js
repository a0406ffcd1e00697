// Study list behaviour: the viewer pane follows the app's own URL, the list is one tab stop, the filter is the server's.
//
// The URL is the state: ``?study=a[&study=b…]`` (or ``?all=1``) says which studies the viewer shows and which rows
// are highlighted. Choosing a study pushes a history entry (pushState) and swaps in a *fresh* iframe element (the
// viewer is cross-origin, so its history cannot be replaced from here; a new element's first load adds no history
// entry). Back / Forward (popstate) render the entry's state the same way; a reload is rendered by the server from
// the URL. Each iframe is named after what it shows, so a browser restoring frames from history can only restore
// the same studies. Viewer URLs come from the server (data-viewer-url / data-prior-url), built only for this launch.
(function () {
  "use strict";
  var list = document.getElementById("study-list");
  var pane = document.getElementById("viewer-pane");
  var stage = document.getElementById("viewer-stage");
  var openNew = document.getElementById("viewer-open-new");
  var title = document.getElementById("viewer-title");
  var placeholder = document.getElementById("viewer-placeholder");
  var loading = document.getElementById("viewer-loading");
  var slow = document.getElementById("viewer-slow");
  var slowLink = document.getElementById("viewer-slow-link");
  var note = document.getElementById("viewer-note");
  var priorButton = document.getElementById("compare-prior");
  var compareForm = document.getElementById("compare-form");
  var modalitySelect = document.getElementById("filter-modality");
  var textInput = document.getElementById("filter-text");
  var filterForm = modalitySelect ? modalitySelect.form : null;
  var count = document.getElementById("study-count");
  var noMatch = document.getElementById("no-match");
  var compareHint = document.getElementById("compare-hint");
  var narrow = window.matchMedia("(max-width: 900px)");
  var frameable = pane && pane.getAttribute("data-frameable") === "true";
  var timeoutMs = pane ? parseInt(pane.getAttribute("data-timeout-ms"), 10) || 15000 : 15000;
  var slowTimer = null;

  function rows() { return list ? Array.prototype.slice.call(list.querySelectorAll("li.study")) : []; }
  function rowById(id) {
    return rows().filter(function (r) { return r.getAttribute("data-study-id") === id; })[0] || null;
  }
  function visibleLinks() {
    return rows().filter(function (r) { return !r.hidden; }).map(function (r) { return r.querySelector("a.study-link"); });
  }

  // ---- the viewer pane -------------------------------------------------------------------------------------
  function currentFrame() { return document.getElementById("viewer-frame"); }

  function setNote(text) {
    if (!note) { return; }
    note.textContent = text || "";
    note.classList.toggle("hidden", !text);
  }

  function showFrame(key, url) {
    var old = currentFrame();
    if (old && old.getAttribute("data-viewer-key") === key) { return; }
    clearTimeout(slowTimer);
    if (old) { old.parentNode.removeChild(old); }
    if (!url) {
      if (loading) { loading.classList.add("hidden"); }
      if (slow) { slow.classList.add("hidden"); }
      return;
    }
    var frame = document.createElement("iframe");
    frame.id = "viewer-frame";
    frame.name = "viewer:" + key;
    frame.title = "Image viewer";
    frame.setAttribute("data-viewer-key", key);
    frame.setAttribute("referrerpolicy", "no-referrer");
    frame.src = url;
    watchLoad(frame, url);
    stage.insertBefore(frame, stage.firstChild);
  }

  function watchLoad(frame, url) {
    if (loading) { loading.classList.remove("hidden"); }
    if (slow) { slow.classList.add("hidden"); }
    if (slowLink) { slowLink.href = url; }
    clearTimeout(slowTimer);
    slowTimer = setTimeout(function () {
      if (currentFrame() === frame && slow) { slow.classList.remove("hidden"); }
    }, timeoutMs);
    frame.addEventListener("load", function () {
      if (currentFrame() !== frame) { return; }
      clearTimeout(slowTimer);
      if (loading) { loading.classList.add("hidden"); }
      if (slow) { slow.classList.add("hidden"); }
    });
  }

  function markSelected(ids, only) {
    var chosen = {};
    ids.forEach(function (id) { chosen[id] = true; });
    (only || rows()).forEach(function (r) {
      var on = chosen[r.getAttribute("data-study-id")] === true;
      r.classList.toggle("selected", on);
      var box = r.querySelector("input.compare");
      if (box) { box.checked = on; }
    });
  }

  // state: {studies: [ids], all: bool, key, url, title}
  function render(state) {
    var ids = state.studies || [];
    markSelected(ids);
    if (filterForm) {
      Array.prototype.slice.call(filterForm.querySelectorAll('input[type="hidden"][name="study"]'))
        .forEach(function (input) { input.parentNode.removeChild(input); });
      ids.forEach(function (id) {
        var input = document.createElement("input");
        input.type = "hidden"; input.name = "study"; input.value = id;
        filterForm.appendChild(input);
      });
    }
    if (title) { title.textContent = state.title || "No study selected"; }
    if (openNew) {
      openNew.href = state.url || "#";
      openNew.classList.toggle("hidden", !state.url);
    }
    if (frameable) { showFrame(state.key || "", state.url || ""); }
    if (placeholder) {
      placeholder.classList.toggle("hidden", Boolean(state.url) && frameable);
      if (!state.url && frameable) { placeholder.textContent = "Choose a study to see its images here."; }
    }
    showReports(ids);
    updatePriorButton(ids);
    setNote("");
  }

  function go(state, href) {
    var current = history.state;
    if (current && current.key === state.key && current.url === state.url) { return; }
    history.pushState(state, "", href);
    render(state);
    if (narrow.matches && stage) { stage.scrollIntoView({ block: "nearest" }); }
  }

  function stateForRow(row) {
    var link = row.querySelector("a.study-link");
    var url = link.getAttribute("data-viewer-url");
    var id = row.getAttribute("data-study-id");
    return { studies: [id], all: false, key: id, url: url, title: row.getAttribute("data-label") };
  }

  function priorState(row) {
    var id = row.getAttribute("data-study-id");
    var prior = row.getAttribute("data-prior-id");
    return { studies: [id, prior], all: false, key: id + "," + prior, url: row.getAttribute("data-prior-url"),
             title: row.getAttribute("data-prior-label") };
  }

  function selectedIds() { return (history.state && history.state.studies) || []; }

  function updatePriorButton(ids) {
    if (!priorButton) { return; }
    var row = ids.length ? rowById(ids[0]) : null;
    var ok = Boolean(row && row.getAttribute("data-prior-url"));
    priorButton.setAttribute("aria-disabled", ok ? "false" : "true");
    priorButton.classList.toggle("is-disabled", !ok);
  }

  function compareWithPrior() {
    var ids = selectedIds();
    var row = ids.length ? rowById(ids[0]) : (document.activeElement && document.activeElement.closest ?
      document.activeElement.closest("li.study") : null);
    if (!row) { setNote("Choose a study first, then compare it with its prior."); return; }
    if (!row.getAttribute("data-prior-url")) { setNote("No earlier study of the same modality to compare with."); return; }
    go(priorState(row), row.getAttribute("data-prior-href"));
  }

  // ---- reports (rendered by the server, one per study; shown for the studies in the viewer) ----------------
  function showReports(ids) {
    var panel = document.getElementById("reports");
    if (!panel) { return; }
    var shown = 0;
    Array.prototype.slice.call(panel.querySelectorAll("[data-report-for]")).forEach(function (el) {
      var on = ids.indexOf(el.getAttribute("data-report-for")) >= 0;
      el.hidden = !on;
      if (on) { shown += 1; }
    });
    var none = document.getElementById("reports-none");
    if (none) { none.hidden = shown > 0 || ids.length === 0; }
  }

  // ---- initial state from the server's rendering --------------------------------------------------------------
  if (pane) {
    var initialIds = rows().filter(function (r) { return r.classList.contains("selected"); })
      .map(function (r) { return r.getAttribute("data-study-id"); });
    var initial = { studies: initialIds, all: pane.getAttribute("data-viewer-key") === "all",
                    key: pane.getAttribute("data-viewer-key") || "", url: pane.getAttribute("data-current-url") || "",
                    title: title ? title.textContent : "" };
    history.replaceState(initial, "", location.href);
    var first = currentFrame();
    if (first && initial.url) { watchLoad(first, initial.url); }
    updatePriorButton(initialIds);
    showReports(initialIds);
  }

  window.addEventListener("popstate", function (event) {
    if (event.state && typeof event.state.key === "string") { render(event.state); } else { location.reload(); }
  });

  var allLink = document.getElementById("all-imaging");
  if (allLink && frameable) {
    allLink.addEventListener("click", function (event) {
      if (event.ctrlKey || event.metaKey || event.shiftKey) { return; }
      event.preventDefault();
      go({ studies: [], all: true, key: "all", url: allLink.getAttribute("data-viewer-url"),
           title: "All imaging of this patient" }, allLink.getAttribute("data-all-href"));
    });
  }
  if (priorButton) { priorButton.addEventListener("click", compareWithPrior); }

  if (!list) { return; }

  // ---- the list: one tab stop (roving tabindex), arrow keys, Enter opens, Space ticks, P compares with prior ----
  function setRoving(link) {
    rows().forEach(function (r) { var a = r.querySelector("a.study-link"); a.tabIndex = a === link ? 0 : -1; });
  }
  function rovingStart() {
    var links = visibleLinks();
    var selected = rows().filter(function (r) { return !r.hidden && r.classList.contains("selected"); })[0];
    setRoving(selected ? selected.querySelector("a.study-link") : links[0] || null);
  }
  rovingStart();

  list.addEventListener("click", function (event) {
    var link = event.target.closest("a.study-link");
    if (!link) { return; }
    setRoving(link);
    if (event.ctrlKey || event.metaKey || event.shiftKey || !frameable || !link.getAttribute("data-viewer-url")) { return; }
    event.preventDefault();
    go(stateForRow(link.closest("li.study")), link.getAttribute("href"));
  });
  list.addEventListener("focusin", function (event) {
    var link = event.target.closest && event.target.closest("a.study-link");
    if (link) { setRoving(link); }
  });

  list.addEventListener("keydown", function (event) {
    var links = visibleLinks();
    var index = links.indexOf(document.activeElement);
    if (index < 0) { return; }
    var next = null;
    if (event.key === "ArrowDown") { next = links[index + 1]; }
    else if (event.key === "ArrowUp") { next = links[index - 1]; }
    else if (event.key === "Home") { next = links[0]; }
    else if (event.key === "End") { next = links[links.length - 1]; }
    else if (event.key === " ") {
      var box = links[index].closest("li.study").querySelector("input.compare");
      if (box) { box.checked = !box.checked; checkLimit(box); }
      event.preventDefault();
      return;
    } else if ((event.key === "p" || event.key === "P") && !event.ctrlKey && !event.metaKey && !event.altKey) {
      var row = links[index].closest("li.study");
      if (row.getAttribute("data-prior-url")) { go(priorState(row), row.getAttribute("data-prior-href")); }
      else { setNote("No earlier study of the same modality to compare with."); }
      event.preventDefault();
      return;
    } else { return; }
    if (next) { setRoving(next); next.focus(); }
    event.preventDefault();
  });

  function checkLimit(box) {
    if (!compareHint) { return; }
    var max = parseInt(compareHint.getAttribute("data-max"), 10);
    if (list.querySelectorAll("input.compare:checked").length > max) {
      box.checked = false;
      compareHint.textContent = "At most " + max + " studies can be compared";
    }
  }
  list.addEventListener("change", function (event) {
    if (event.target.classList.contains("compare")) { checkLimit(event.target); }
  });

  if (compareForm) {
    compareForm.addEventListener("submit", function (event) {
      var ticked = list.querySelectorAll("input.compare:checked").length;
      if (ticked === 0) {
        event.preventDefault();
        if (compareHint) { compareHint.textContent = "Tick the studies to compare first (up to " + compareHint.getAttribute("data-max") + ")"; }
      }
    });
  }

  // ---- the filter is the server's (one implementation: /l/<launch>/matches); here its answer hides rows --------
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
        syncSeparators();
        var focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("li.study");
        if (!focused || focused.hidden) { rovingStart(); }
      })
      .catch(function (error) { if (error.name !== "AbortError" && filterForm) { filterForm.submit(); } });
  }
  var debounce = null;
  function applyFilterSoon() { clearTimeout(debounce); debounce = setTimeout(applyFilter, 120); }

  // Year headings (li.year-separator, aria-hidden: each row's date says its year) follow the rows they head.
  function syncSeparators() {
    var separator = null;
    var shown = false;
    Array.prototype.slice.call(list.children).forEach(function (item) {
      if (item.classList.contains("year-separator")) {
        if (separator) { separator.hidden = !shown; }
        separator = item; shown = false;
      } else if (!item.hidden) { shown = true; }
    });
    if (separator) { separator.hidden = !shown; }
  }

  // The whole unfiltered, settled list is on the page: hide the rows the server's filter leaves out, in place.
  // Otherwise (only the newest rows, a filter already applied, or older pages still loading) the form reloads the
  // page with the server's answer (the modality choice submits; the text is submitted with Enter).
  function isComplete() { return list.getAttribute("data-complete") === "true"; }
  if (modalitySelect) {
    modalitySelect.addEventListener("change", function () { if (isComplete()) { applyFilter(); } else { filterForm.submit(); } });
  }
  if (textInput) { textInput.addEventListener("input", function () { if (isComplete()) { applyFilterSoon(); } }); }
  var sortSelect = document.getElementById("sort");
  if (sortSelect && filterForm) { sortSelect.addEventListener("change", function () { filterForm.submit(); }); }

  // ---- rows after the first page: older pages arriving in the background, and "Show older" -------------------
  // Both append the server's rendered rows (GET /l/<launch>/rows?after=<rows on the page>) below the last one, so
  // the reading position never moves. The page shows at most data-show rows by itself; beyond that the count and
  // the "Show older" link say how many more there are.
  var rowsUrl = document.querySelector(".app").getAttribute("data-rows-url");
  var loadingNote = document.getElementById("list-loading");
  var loadId = list.getAttribute("data-load-id") || "";
  var target = parseInt(list.getAttribute("data-show"), 10) || 200;
  var listQuery = { sort: list.getAttribute("data-sort") || "newest", modality: list.getAttribute("data-modality") || "",
                    q: list.getAttribute("data-q") || "" };
  var filtered = Boolean(listQuery.modality || listQuery.q.trim());
  var busy = false;

  function rowsQuery(after, limit) {
    var parts = ["after=" + after, "limit=" + limit, "load=" + encodeURIComponent(loadId)];
    ["sort", "modality", "q"].forEach(function (key) { if (listQuery[key]) { parts.push(key + "=" + encodeURIComponent(listQuery[key])); } });
    var last = rows().slice(-1)[0];
    if (last) { parts.push("last=" + encodeURIComponent(last.getAttribute("data-study-id") || "")); }
    return rowsUrl + "?" + parts.join("&");
  }

  function appendRows(html, replace) {
    var holder = document.createElement("template");
    holder.innerHTML = html;
    var added = Array.prototype.slice.call(holder.content.querySelectorAll("li.study"));
    added.forEach(function (r) { var a = r.querySelector("a.study-link"); if (a) { a.tabIndex = -1; } });
    if (replace) {
      var top = list.closest(".list-scroll") ? list.closest(".list-scroll").scrollTop : 0;
      while (list.firstChild) { list.removeChild(list.firstChild); }
      list.appendChild(holder.content);
      if (list.closest(".list-scroll")) { list.closest(".list-scroll").scrollTop = top; }
    } else {
      list.appendChild(holder.content);
    }
    markSelected(selectedIds(), added);
    var focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("li.study");
    if (!focused || replace) { rovingStart(); }
    if (noMatch) { noMatch.classList.toggle("hidden", rows().length > 0); }
    return added.length;
  }

  function plural(n) { return n === 1 ? "study" : "studies"; }

  function updateCounts(answer) {
    var onPage = rows().length;
    var more = Math.max(0, answer.matching - onPage);
    if (count) { count.textContent = String(answer.matching); }
    list.setAttribute("data-matching", String(answer.matching));
    var line = document.getElementById("show-older-line");
    var link = document.getElementById("show-older");
    if (line && link) {
      line.classList.toggle("hidden", more === 0);
      var batch = Math.min(more, 200);
      link.textContent = "Show " + batch + " older " + plural(batch);
      var next = new URL(location.href);
      next.searchParams.set("show", String(onPage + 200));
      link.href = next.pathname + next.search;
      var notShown = document.getElementById("not-shown");
      if (notShown) { notShown.textContent = "(" + more + " not shown)"; }
      if (more === 0 && !answer.loading) { line.parentNode.removeChild(line); }
    }
    if (loadingNote) {
      if (answer.loading) {
        loadingNote.textContent = "Loading older studies… " + answer.loaded + " loaded so far" +
          (filtered ? "; the filter is searching the " + answer.loaded + " loaded so far." : ".");
      }
      loadingNote.classList.toggle("hidden", !answer.loading);
    }
  }

  function finish(answer) {
    list.setAttribute("data-loading", "false");
    if (answer.incomplete && !document.getElementById("list-incomplete") && loadingNote) {
      var notice = document.createElement("p");
      notice.className = "notice notice-warning";
      notice.id = "list-incomplete";
      notice.setAttribute("role", "status");
      var strong = document.createElement("strong");
      strong.textContent = "List incomplete:";
      notice.appendChild(strong);
      notice.appendChild(document.createTextNode(" " + answer.incomplete + ". Studies shown are those the EHR returned so far."));
      loadingNote.parentNode.insertBefore(notice, loadingNote.nextSibling);
    }
    var whole = !filtered && rows().length >= answer.matching;
    list.setAttribute("data-complete", whole ? "true" : "false");
  }

  var delay = 400;
  var mismatches = 0;
  function schedule() { setTimeout(poll, delay); delay = Math.min(Math.round(delay * 1.5), 4000); }
  function poll() {
    if (busy) { schedule(); return; }
    busy = true;
    var after = rows().length;
    fetch(rowsQuery(after, Math.max(0, Math.min(200, target - after))),
          { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { if (!response.ok) { throw new Error("HTTP " + response.status); } return response.json(); })
      .then(function (answer) {
        busy = false;
        if (!answer.same_load) {  // the stored list is not (yet) this page's: wait for it, then show the new one
          mismatches += 1;
          if (mismatches >= 6) { location.reload(); return; }
          schedule();
          return;
        }
        mismatches = 0;
        if (answer.prefix_changed) { appendRows(answer.html, true); }
        else if (answer.after === rows().length) { appendRows(answer.html, false); }
        updateCounts(answer);
        if (answer.loading) { schedule(); } else { finish(answer); }
      })
      .catch(function () { busy = false; schedule(); });
  }
  if (list.getAttribute("data-loading") === "true" && rowsUrl) { schedule(); }

  // "Show older": the next rows appended in place (the link's own URL still works without JavaScript).
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("#show-older");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
    event.preventDefault();
    if (busy) {  // a poll is under way: it (or the next one) appends up to the raised target
      if (list.getAttribute("data-loading") === "true") { target = rows().length + 200; }
      return;
    }
    busy = true;
    var after = rows().length;
    target = after + 200;
    fetch(rowsQuery(after, 200), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { if (!response.ok) { throw new Error("HTTP " + response.status); } return response.json(); })
      .then(function (answer) {
        busy = false;
        if (answer.prefix_changed) { appendRows(answer.html, true); }
        else if (answer.after === rows().length) { appendRows(answer.html, false); }
        var url = new URL(location.href);
        url.searchParams.set("show", String(target));
        history.replaceState(history.state, "", url.pathname + url.search);
        updateCounts(answer);
        if (!answer.loading && list.getAttribute("data-loading") !== "true") { finish(answer); }
      })
      .catch(function () { busy = false; location.href = link.href; });
  });
})();
