"""Two quick clicks on the cookie-blocked page's "Open in a new window": one window, one launch that works.

The page (``templates/cookie_blocked.html``) is rendered by the app for a fresh sandbox EHR launch and
loaded in a tab of the EHR's origin; its button opens a named window, so the second click re-navigates
that same window instead of racing a second launch over the one cookie.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from flask import render_template
from playwright.sync_api import expect

from .pages import LIST_URL, STUDY_ROWS

pytestmark = pytest.mark.browser


def test_two_quick_clicks_open_one_window_whose_launch_reaches_the_list(page, servers, context):
    created = page.request.post(f"{servers.ehr_origin}/ehr/api/launches", data={"patient": "pt-1001"})
    assert created.status == 201, created.text()
    launch_url = created.json()["launch_url"]
    launch_id = launch_url.split("launch=", 1)[1].split("&", 1)[0]
    relaunch = f"{servers.app_origin}/launch?" + urlencode({"iss": servers.iss, "launch": launch_id})
    with servers.app.test_request_context("/"):
        html = render_template("cookie_blocked.html", relaunch_url=relaunch)
    page.goto(f"{servers.ehr_origin}/ehr/patients")
    page.set_content(html)
    button = page.get_by_role("link", name="Open in a new window")
    with context.expect_page() as opened:
        button.click()
        button.click(no_wait_after=True)
    window = opened.value
    window.wait_for_url(LIST_URL)
    page.wait_for_timeout(500)  # a second window, if any, would have opened by now
    assert len(context.pages) == 2, [p.url for p in context.pages]
    expect(window.locator(STUDY_ROWS).first).to_be_visible()
    expect(window.locator("main.message")).to_have_count(0)
