"""Scenario 2: choosing a study shows exactly that study, with real pixels, in the viewer frame and a new window."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .pages import STUDY_ROWS, choose_study, image_png, launch_to_list, pixel_stats, wait_for_viewer_image
from .servers import study_uid_of

pytestmark = pytest.mark.browser

CT_UID = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"  # pydicom's CT_small.dcm
MR_UID = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"  # pydicom's MR_small.dcm


def test_choosing_a_study_shows_its_pixels_in_the_viewer_frame(page, servers):
    assert servers.study("pt-1001", "is-1001-ct").study_instance_uid == CT_UID
    app = launch_to_list(page, servers, "pt-1001")
    expect(app.locator("#viewer-placeholder")).to_be_visible()

    viewer_url, viewer = choose_study(app, "is-1001-ct")

    assert viewer_url.startswith(f"{servers.viewer_base}?requestType=STUDY&studyUID=")
    assert study_uid_of(viewer_url) == CT_UID
    expect(app.locator("#viewer-frame")).to_have_attribute("src", viewer_url)
    assert viewer.url == viewer_url
    expect(app.locator(f'{STUDY_ROWS}[data-study-id="is-1001-ct"]')).to_have_class("study selected")
    expect(app.locator(f"{STUDY_ROWS}.selected")).to_have_count(1)
    assert app.url.endswith("/?study=is-1001-ct")  # history.replaceState: a reload keeps the choice

    expect(viewer.locator(".study-head .uid")).to_have_text(f"Study UID {CT_UID}")
    expect(viewer.locator(".study-head .patient")).to_contain_text("Margaret Ann Whitfield")
    distinct, stddev = pixel_stats(image_png(page, viewer))
    assert distinct >= 32, distinct
    assert stddev > 10, stddev

    # another row replaces the study in the same frame
    mr_url, viewer = choose_study(app, "is-1001-mr")
    assert study_uid_of(mr_url) == MR_UID
    expect(viewer.locator(".study-head .uid")).to_have_text(f"Study UID {MR_UID}")
    distinct, stddev = pixel_stats(image_png(page, viewer))
    assert distinct >= 32 and stddev > 10, (distinct, stddev)


def test_open_in_new_window_opens_the_same_viewer_url(page, servers):
    app = launch_to_list(page, servers, "pt-1001")
    viewer_url, _ = choose_study(app, "is-1001-ct")
    open_new = app.locator("#viewer-open-new")
    expect(open_new).to_be_visible()
    expect(open_new).to_have_attribute("href", viewer_url)

    with page.context.expect_page() as new_page_info:
        open_new.click()
    window = new_page_info.value
    window.wait_for_url(viewer_url)
    expect(window.locator(".study-head .uid")).to_have_text(f"Study UID {CT_UID}")
    wait_for_viewer_image(window)
    assert page.url == servers.chart_url("pt-1001")  # the EHR tab stayed where it was
