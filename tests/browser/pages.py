"""Page helpers shared by the browser tests and ``scripts/screenshot.py``: the EHR chart, the app, the viewer.

Everything waits with Playwright (``wait_for_selector``, ``wait_for_url``,
``wait_for_function``, ``expect``); nothing sleeps.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from urllib.parse import urljoin

from playwright.sync_api import Frame, Page

from .servers import APP_FRAME, VIEWER_FRAME, Servers

STUDY_ROWS = "#study-list li.study"
ERROR_TITLE = "main.message h1.message-title"
LIST_URL = re.compile(r"/l/[^/?#]+/")
VIEWER_IMAGE = "figure.series img"
_IMAGE_LOADED = """() => {
  const img = document.querySelector('figure.series img');
  return img !== null && img.complete && img.naturalWidth > 0;
}"""


def app_frame(page: Page) -> Frame:
    """The app's frame in the EHR chart page (the ``Frame`` object survives the frame's navigations)."""
    frame = page.wait_for_selector(APP_FRAME).content_frame()
    assert frame is not None, "the chart's app iframe has no content frame"
    return frame


def open_chart(page: Page, servers: Servers, patient_id: str, **query: str) -> Frame:
    """Open *patient_id*'s chart (Imaging tab: a fresh EHR launch in the app frame); return the app frame."""
    page.goto(servers.chart_url(patient_id, **query))
    return app_frame(page)


def wait_for_study_list(frame: Frame) -> None:
    """Wait until the app's study list page is shown in *frame* (banner and at least one row)."""
    frame.wait_for_url(LIST_URL)
    frame.wait_for_selector(STUDY_ROWS)


def launch_to_list(page: Page, servers: Servers, patient_id: str) -> Frame:
    """EHR launch of *patient_id* inside the chart's frame, until the study list is shown; the app frame."""
    frame = open_chart(page, servers, patient_id)
    wait_for_study_list(frame)
    return frame


def study_ids(frame: Frame) -> list[str]:
    """``data-study-id`` of every row of the list, in page order."""
    return frame.locator(STUDY_ROWS).evaluate_all("rows => rows.map(r => r.dataset.studyId)")


def study_datetimes(frame: Frame) -> list[datetime]:
    """The rows' ``time.date[datetime]`` values, parsed (rows without a date are an error here)."""
    values = frame.locator(f"{STUDY_ROWS} time.date").evaluate_all(
        "times => times.map(t => t.getAttribute('datetime'))")
    return [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in values]


def viewer_frame(app: Frame) -> Frame:
    """The app's ``#viewer-frame`` as a ``Frame``."""
    frame = app.wait_for_selector(VIEWER_FRAME, state="attached").content_frame()
    assert frame is not None, "the viewer iframe has no content frame"
    return frame


def choose_study(app: Frame, study_id: str) -> tuple[str, Frame]:
    """Click the row of *study_id*; wait until the viewer frame shows its IID page with a loaded image.

    Returns ``(viewer_url, viewer_frame)``, the URL being the row's ``data-viewer-url``.
    """
    link = app.locator(f'{STUDY_ROWS}[data-study-id="{study_id}"] a.study-link')
    viewer_url = link.get_attribute("data-viewer-url")
    assert viewer_url, f"study {study_id} has no viewer URL"
    link.click()
    viewer = viewer_frame(app)
    viewer.wait_for_url(viewer_url)
    wait_for_viewer_image(viewer)
    return viewer_url, viewer


def wait_for_viewer_image(viewer: Frame | Page) -> None:
    """Wait until the viewer's first image has loaded and has pixels (``naturalWidth > 0``)."""
    viewer.wait_for_function(_IMAGE_LOADED)


def image_png(page: Page, viewer: Frame) -> bytes:
    """The bytes of the PNG the viewer's first image shows (fetched with the page's cookies)."""
    src = viewer.locator(VIEWER_IMAGE).first.get_attribute("src")
    assert src, "the viewer's image has no src"
    response = page.request.get(urljoin(viewer.url, src))
    assert response.ok, f"{response.status} for {response.url}"
    assert response.headers["content-type"] == "image/png", response.headers
    return response.body()


def pixel_stats(png: bytes) -> tuple[int, float]:
    """``(distinct grey values, standard deviation)`` of a PNG, to tell an image from a blank."""
    from PIL import Image, ImageStat

    with Image.open(io.BytesIO(png)) as image:
        grey = image.convert("L")
        distinct = sum(1 for count in grey.histogram() if count)
        return distinct, ImageStat.Stat(grey).stddev[0]


def record_frame_navigations(page: Page) -> list[str]:
    """A list, kept up to date, of the document requests of *page*'s direct child frames (the app frame).

    Every hop counts (redirects included), history.replaceState does not. A
    healthy EHR launch makes five (launch, cookie check, authorize, callback,
    list); counting them bounds redirect loops.
    """
    urls: list[str] = []

    def _record(request) -> None:
        if request.is_navigation_request() and request.frame.parent_frame == page.main_frame:
            urls.append(request.url)

    page.on("request", _record)
    return urls
