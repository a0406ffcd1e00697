"""Relaunch from an error page: a standalone launch's Relaunch button starts a launch that works."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .pages import LIST_URL, STUDY_ROWS
from .servers import EHR_NAME

pytestmark = pytest.mark.browser


def test_expired_standalone_launch_offers_a_relaunch_button_that_works(page, servers):
    """The EHR revokes the session: the 401 page names the EHR and the patient (banner name, already read) and its
    Relaunch button starts a new standalone launch that reaches the list again."""
    page.goto(f"{servers.app_origin}/")
    page.get_by_role("link", name=EHR_NAME).click()
    page.wait_for_url(f"{servers.ehr_origin}/oauth2/authorize?**")
    page.get_by_label("Daniel Okafor").check()
    page.get_by_role("button", name="Open record in app").click()
    page.wait_for_url(LIST_URL)
    first_list = page.url
    for record in servers.token_records():  # the EHR ends the session: tokens expired, refresh refused
        record.expires_in = -1
        record.refresh_revoked = True
    page.goto(first_list + "?refresh=1")
    expect(page.locator("h1.message-title")).to_have_text("Your session has expired")
    expect(page.locator("#error-ehr")).to_have_text(EHR_NAME)
    expect(page.locator("#error-patient")).to_have_text("OKAFOR, Daniel")
    relaunch = page.locator("a#relaunch")
    expect(relaunch).to_have_text("Relaunch")
    assert relaunch.get_attribute("href") == f"/launch?iss={servers.iss.replace(':', '%3A').replace('/', '%2F')}"
    relaunch.click()
    page.wait_for_url(f"{servers.ehr_origin}/oauth2/authorize?**")
    page.get_by_label("Daniel Okafor").check()
    page.get_by_role("button", name="Open record in app").click()
    page.wait_for_url(LIST_URL)
    assert page.url != first_list
    expect(page.locator(STUDY_ROWS)).to_have_count(1)
