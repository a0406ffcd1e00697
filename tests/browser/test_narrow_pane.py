"""A 400 x 800 EHR frame: the banner, the list and the image are all reachable without scroll areas fighting.

Real geometry in Chromium: the app frame of the sandbox chart is sized to exactly 400 x 800 CSS px; the list
has at most one scrollable ancestor (the frame's document), the banner stays in view while the list
scrolls, and after a study opens its image is inside the frame's viewport with the banner still shown.
A screenshot of each state is saved in the test's temporary directory.
"""

from __future__ import annotations

import pytest

from .pages import STUDY_ROWS, app_frame, choose_study, launch_to_list, pixel_stats
from .servers import APP_FRAME

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 400, 800

SCROLLABLE_ANCESTORS = """() => {
  const found = [];
  for (let el = document.getElementById('study-list').parentElement; el; el = el.parentElement) {
    const style = getComputedStyle(el);
    const scrolls = /(auto|scroll)/.test(style.overflowY) && el.scrollHeight > el.clientHeight;
    const isRoot = el === document.scrollingElement;
    if (scrolls || (isRoot && el.scrollHeight > el.clientHeight)) { found.push(el.className || el.tagName); }
  }
  return found;
}"""

RECT = "(el) => { const r = el.getBoundingClientRect(); return [r.top, r.bottom, r.left, r.right]; }"


def _in_view(rect, width=WIDTH, height=HEIGHT, whole=True) -> bool:
    top, bottom, left, right = rect
    if whole:
        return top >= -0.5 and bottom <= height + 0.5 and left >= -0.5 and right <= width + 0.5
    return bottom > 0 and top < height and right > 0 and left < width


@pytest.fixture
def narrow_page(browser):
    context = browser.new_context(viewport={"width": WIDTH + 80, "height": HEIGHT + 300})
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def test_banner_list_and_image_share_a_400_by_800_frame(narrow_page, servers, tmp_path):
    page = narrow_page
    app = launch_to_list(page, servers, "pt-1001")
    page.eval_on_selector(APP_FRAME, f"f => {{ f.style.boxSizing = 'content-box'; f.style.width = '{WIDTH}px'; f.style.height = '{HEIGHT}px'; }}")
    app.wait_for_function(f"() => window.innerWidth === {WIDTH} && window.innerHeight === {HEIGHT}")
    page.locator(APP_FRAME).screenshot(path=str(tmp_path / "narrow-list.png"))

    scrollers = app.evaluate(SCROLLABLE_ANCESTORS)
    assert len(scrollers) <= 1, scrollers
    banner = app.locator("header.banner")
    first_row = app.locator(STUDY_ROWS).first
    before = first_row.evaluate(RECT)
    # the list scrolls (in the one scroll area); the banner stays in view
    app.evaluate("() => { const list = document.getElementById('study-list'); "
                 "list.lastElementChild.scrollIntoView({block: 'end'}); }")
    after = first_row.evaluate(RECT)
    assert after[0] < before[0] - 100, (before, after)
    assert _in_view(banner.evaluate(RECT)), banner.evaluate(RECT)
    page.locator(APP_FRAME).screenshot(path=str(tmp_path / "narrow-scrolled.png"))

    _, viewer = choose_study(app, "is-1001-ct")
    frame_rect = app.locator("#viewer-frame").evaluate(RECT)
    image_rect = viewer.locator("figure.series img").first.evaluate(RECT)
    # the image's box in the app frame's coordinates: visible there, not hidden under the banner
    image_in_app = [frame_rect[0] + image_rect[0], frame_rect[0] + image_rect[1],
                    frame_rect[2] + image_rect[2], frame_rect[2] + image_rect[3]]
    assert _in_view(image_in_app, whole=False), (frame_rect, image_rect)
    banner_rect = banner.evaluate(RECT)
    assert _in_view(banner_rect), banner_rect
    visible_top = max(image_in_app[0], banner_rect[1])
    visible_bottom = min(image_in_app[1], HEIGHT, frame_rect[1])
    assert visible_bottom - visible_top >= 150, (image_in_app, banner_rect, frame_rect)
    assert len(app.evaluate(SCROLLABLE_ANCESTORS)) <= 1
    shot = page.locator(APP_FRAME).screenshot(path=str(tmp_path / "narrow-viewer.png"))
    distinct, stddev = pixel_stats(shot)
    assert distinct > 20 and stddev > 10
    assert (tmp_path / "narrow-viewer.png").stat().st_size > 0
