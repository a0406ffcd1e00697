"""Section 7 (``--only thumbnails``): thumbnails in a real browser, and the list's first paint with them on and off.

Headless Chromium (Playwright, ``/usr/bin/chromium``) launches the app like the EHR would open it (top level,
``GET /launch?iss=…&launch=…`` through authorize and callback to the list), against the run's sandbox (TLS
behind the latency proxy: the browser's and the app's requests to the EHR and its DICOMweb service cross the
RTT) and an instrumented app process (:meth:`bench.env.Environment.instrumented_app`, registered with
``patient/Endpoint.rs`` so that each study's ``dicom-wado-rs`` Endpoint is included and the app fetches
``/dicomweb/studies/{uid}/thumbnail`` with the launch's token). The patient is ``pt-h100`` (100 studies with
images; one page).

Per launch, in the page (an init script, before any of the page's own):

* **first paint**: ``first-contentful-paint`` of the list document, in ms after the navigation started (the
  whole redirect chain), and after the list's HTML began to arrive (``responseStart``): the second one is
  what thumbnails could delay, the first adds the launch's own round trips;
* **thumbnails of the first 20 rows shown**: the last ``load`` (or ``error``, then a placeholder) event of the
  ``img[data-thumbnail]`` in the first 20 rows, in ms after first paint. The viewport is 1280 × 1800 CSS
  pixels so the first 20 rows (64 px thumbnails) are on screen and not held back by ``loading="lazy"``.

*On* and *off* launches alternate on, off, off, on, … with a pause between them (fresh browser context each: empty cache and cookie jar); *off* blocks
``*/thumbnail`` in the browser (``Network.setBlockedURLs``, no interception cost), so the app serves the same
HTML and the EHR the same requests except the thumbnails. Goals: first 20 thumbnails ≤ 2 s after first paint
at 50 ms RTT; first paint with thumbnails ≤ 1.05 × without (medians).
"""

from __future__ import annotations

import re
import statistics
import time

from . import browser
from .env import Environment, Sandbox, registration

PATIENT = "pt-h100"
LIST_URL = re.compile(r"/l/[^/?#]+/")
ROWS = 20
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
THUMBNAILS_GOAL_MS = 2000.0
SETTLE_SECONDS = 1.5  # between launches: the app finishes the previous page's other thumbnails (rows 21-100)
PAINT_RATIO_GOAL = 1.05

RECORDER = """(() => {
  const seen = new Map();
  const note = (event) => {
    const img = event.target;
    if (img && img.matches && img.matches('img[data-thumbnail]') && !seen.has(img.src)) {
      seen.set(img.src, {t: performance.now(), ok: event.type === 'load'});
    }
  };
  document.addEventListener('load', note, true);
  document.addEventListener('error', note, true);
  window.__thumbnails = seen;
})();"""

#: the first ROWS rows' thumbnail URLs (placeholders: no URL), once every one of them has loaded or failed
FIRST_ROWS_DONE = """rows => {
  const items = Array.from(document.querySelectorAll('#study-list li.study')).slice(0, rows);
  if (items.length === 0) return null;
  const urls = [];
  for (const li of items) {
    const img = li.querySelector('img[data-thumbnail]');
    if (img) urls.push(img.src);
  }
  const seen = window.__thumbnails;
  if (!urls.every(u => seen.has(u))) return null;
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  if (!paint) return null;
  const nav = performance.getEntriesByType('navigation')[0];
  const marks = urls.map(u => seen.get(u));
  return {rows: items.length, thumbnails: urls.length, loaded: marks.filter(m => m.ok).length,
          last_ms: marks.length ? Math.max(...marks.map(m => m.t)) : paint.startTime,
          fcp_ms: paint.startTime, response_start_ms: nav ? nav.responseStart : 0};
}"""

#: first paint only (thumbnails blocked: nothing to wait for)
PAINTED = """() => {
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  const nav = performance.getEntriesByType('navigation')[0];
  const rows = document.querySelectorAll('#study-list li.study').length;
  return paint && rows ? {rows, fcp_ms: paint.startTime, response_start_ms: nav ? nav.responseStart : 0} : null;
}"""


def _one_launch(chromium, ehr: Sandbox, thumbnails_on: bool) -> dict:
    context = chromium.new_context(viewport={"width": 1280, "height": 1800}, ignore_https_errors=True)
    try:
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.setBlockedURLs", {"urls": [] if thumbnails_on else ["*/thumbnail"]})
        page.add_init_script(RECORDER)
        launch_url = browser.create_ehr_launch(ehr.control, PATIENT)
        started = time.perf_counter()
        page.goto(launch_url, wait_until="commit", timeout=60_000)
        page.wait_for_url(LIST_URL, timeout=60_000)
        if thumbnails_on:
            result = page.wait_for_function(FIRST_ROWS_DONE, arg=ROWS, timeout=60_000, polling=20).json_value()
            result["thumbnails_after_paint_ms"] = result["last_ms"] - result["fcp_ms"]
        else:
            result = page.wait_for_function(PAINTED, timeout=60_000, polling=20).json_value()
        result["wall_s"] = time.perf_counter() - started
        result["paint_after_html_ms"] = result["fcp_ms"] - result["response_start_ms"]
        return result
    finally:
        context.close()


def thumbnails_section(env: Environment, plan, ehr: Sandbox, log=print) -> dict:
    """Run *on* / *off* launches in the order on, off, off, on, … (``plan.cold_runs`` × 4 each, at least 6;
    :data:`SETTLE_SECONDS` apart) after one warm-up launch, and return the raw figures with medians (ms)."""
    from playwright.sync_api import sync_playwright

    per_variant = max(6, plan.cold_runs * 4)
    doc = registration(ehr.base, env.app_port)
    doc["ehrs"][0]["scopes"] = ["online_access", "patient/Endpoint.rs"]
    runs: dict[str, list[dict]] = {"on": [], "off": []}
    with env.instrumented_app(doc, "thumbnails"), sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            _one_launch(chromium, ehr, True)  # warm-up: the app's process, its connections, the sandbox's renders
            for index in range(2 * per_variant):
                variant = "on" if index % 4 in (0, 3) else "off"  # on off off on …: drift cancels out
                time.sleep(SETTLE_SECONDS)
                runs[variant].append(_one_launch(chromium, ehr, variant == "on"))
        finally:
            chromium.close()
    out: dict = {"patient": PATIENT, "rows": ROWS, "rtt_ms": plan.rtt_ms, "launches_per_variant": per_variant,
                 "runs": runs}
    for variant, items in runs.items():
        out[variant] = {"fcp_ms": statistics.median(r["fcp_ms"] for r in items),
                        "paint_after_html_ms": statistics.median(r["paint_after_html_ms"] for r in items)}
    on = runs["on"]
    out["on"]["thumbnails_after_paint_ms"] = statistics.median(r["thumbnails_after_paint_ms"] for r in on)
    out["on"]["thumbnails_after_paint_max_ms"] = max(r["thumbnails_after_paint_ms"] for r in on)
    out["on"]["loaded"] = min(r["loaded"] for r in on)
    out["on"]["thumbnails"] = min(r["thumbnails"] for r in on)
    out["paint_ratio"] = out["on"]["fcp_ms"] / out["off"]["fcp_ms"]
    out["paint_after_html_ratio"] = out["on"]["paint_after_html_ms"] / max(out["off"]["paint_after_html_ms"], 1e-9)
    for line in summary(out):
        log("  " + line)
    return out


def summary(data: dict) -> list[str]:
    """The section's figures beside their goals, as printed lines."""
    on, off = data["on"], data["off"]
    thumbs = on["thumbnails_after_paint_ms"]
    ratio = data["paint_ratio"]
    return [
        f"time until the thumbnails of the first {data['rows']} rows are shown: {thumbs:.0f} ms after first paint "
        f"(median of {data['launches_per_variant']}, worst {on['thumbnails_after_paint_max_ms']:.0f} ms; "
        f"{on['loaded']}/{on['thumbnails']} loaded) — goal ≤ {THUMBNAILS_GOAL_MS:.0f} ms at 50 ms RTT "
        f"(this run {data['rtt_ms']} ms): {'met' if thumbs <= THUMBNAILS_GOAL_MS else 'missed'}",
        f"list's first paint, thumbnails on / off: {on['fcp_ms']:.0f} / {off['fcp_ms']:.0f} ms after the launch "
        f"navigation = {ratio:.3f} × — goal ≤ {PAINT_RATIO_GOAL} ×: {'met' if ratio <= PAINT_RATIO_GOAL else 'missed'}",
        f"first paint after the list's HTML began to arrive, on / off: {on['paint_after_html_ms']:.0f} / "
        f"{off['paint_after_html_ms']:.0f} ms",
    ]


def rows(results: dict) -> list:
    """Table rows (:class:`bench.report.Row`) for the thumbnails section, when it ran."""
    from .report import Row

    data = results.get("thumbnails")
    if not data:
        return []
    section = "7. Thumbnails (Chromium)"
    on, off = data["on"], data["off"]
    thumbs, ratio = on["thumbnails_after_paint_ms"], data["paint_ratio"]
    return [
        Row(section, f"time until the thumbnails of the first {data['rows']} rows are shown (after first paint)",
            f"{thumbs:.0f} ms", f"≤ {THUMBNAILS_GOAL_MS:.0f} ms at 50 ms RTT",
            "met" if thumbs <= THUMBNAILS_GOAL_MS else "missed",
            f"{data['patient']}, median of {data['launches_per_variant']}, worst "
            f"{on['thumbnails_after_paint_max_ms']:.0f} ms, {on['loaded']}/{on['thumbnails']} loaded"),
        Row(section, "list's first paint, thumbnails on / off", f"{ratio:.3f} ×", f"≤ {PAINT_RATIO_GOAL} ×",
            "met" if ratio <= PAINT_RATIO_GOAL else "missed",
            f"FCP {on['fcp_ms']:.0f} / {off['fcp_ms']:.0f} ms after the launch navigation; "
            f"{on['paint_after_html_ms']:.0f} / {off['paint_after_html_ms']:.0f} ms after the list's HTML"),
    ]
