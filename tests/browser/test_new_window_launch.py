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
    html = html.replace('src="/static/', f'src="{servers.app_origin}/static/')  # the app serves the page's script
    launches: list[str] = []
    context.on("request", lambda r: launches.append(r.url) if r.url.startswith(f"{servers.app_origin}/launch?")
               else None)
    page.goto(f"{servers.ehr_origin}/ehr/patients")
    page.set_content(html)
    page.wait_for_load_state("load")
    button = page.get_by_role("link", name="Open in a new window")
    with context.expect_page() as opened:
        button.click()
    window = opened.value
    page.wait_for_function("() => true")  # let the first navigation start
    for _ in range(50):
        if launches:
            break
        page.wait_for_timeout(20)
    button.click(no_wait_after=True)  # a second click while the first sign-in is under way
    window.wait_for_url(LIST_URL)
    page.wait_for_timeout(500)  # a second window, if any, would have opened by now
    assert len(context.pages) == 2, [p.url for p in context.pages]
    assert launches == [relaunch]  # the second click only brought the window forward: one use of the launch id
    expect(window.locator(STUDY_ROWS).first).to_be_visible()
    expect(window.locator("main.message")).to_have_count(0)
