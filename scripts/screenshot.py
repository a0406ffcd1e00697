"""`make screenshot`: the README's picture, docs/screenshot.png (1400x1250).

Starts the sandbox EHR and the app on free loopback ports (two sites, as in
the browser tests), opens the chart of the demo patient pt-1001 in headless
Debian Chromium, lets the EHR launch the app in its frame, clicks the CT chest
study, presses "Compare with prior" and waits until the viewer shows both studies
(the 2004 CT and its 2002 prior, two panes) with their images and the reports
beside them, then saves the page.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser.pages import choose_study, launch_to_list, viewer_frame  # noqa: E402
from tests.browser.servers import CHROMIUM, chromium_available, launch_chromium, start_servers  # noqa: E402

OUTPUT = ROOT / "docs" / "screenshot.png"
VIEWPORT = {"width": 1400, "height": 1250}  # tall enough for the two panes and the reports below them
PATIENT = "pt-1001"
STUDY = "is-1001-ct"  # CT chest, from pydicom's CT_small.dcm (the README's caption names a CT study)
PRIOR = "is-1001-ct-prior"  # its prior of the same modality and body site
BOTH_IMAGES = """() => {
  const images = [...document.querySelectorAll('figure.series img')];
  return images.length >= 2 && images.every(img => img.complete && img.naturalWidth > 0);
}"""


def main() -> int:
    """Take the screenshot; 0 on success, 1 when Chromium is missing."""
    if not chromium_available():
        print(f"screenshot: Chromium not found at {CHROMIUM} (Debian: apt-get install chromium)", file=sys.stderr)
        return 1
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no request log lines
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    with start_servers() as servers, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(15_000)
            page = context.new_page()
            app = launch_to_list(page, servers, PATIENT)
            choose_study(app, STUDY)
            app.locator("#compare-prior").click()
            app.wait_for_function(f"""() => {{
              const rows = [...document.querySelectorAll('#study-list li.study.selected')].map(r => r.dataset.studyId);
              return rows.includes('{STUDY}') && rows.includes('{PRIOR}');
            }}""")
            viewer = viewer_frame(app)
            viewer.wait_for_function(BOTH_IMAGES)
            app.locator(f'[data-report-for="{STUDY}"]').wait_for(state="visible")
            app.locator(f'[data-report-for="{PRIOR}"]').wait_for(state="visible")
            app.locator("#reports").evaluate("panel => { panel.scrollTop = 0; }")  # the first report's heading
            page.screenshot(path=str(OUTPUT))
        finally:
            browser.close()
    print(f"screenshot: wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
