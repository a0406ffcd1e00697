"""Scenario 4: standalone launch from the app's start page, patient picked in the EHR, list at top level."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .pages import LIST_URL, STUDY_ROWS, choose_study, study_ids
from .servers import EHR_NAME, study_uid_of

pytestmark = pytest.mark.browser


def test_standalone_launch_with_the_ehr_patient_picker(page, servers):
    page.goto(f"{servers.app_origin}/")
    expect(page.locator("h1.message-title")).to_have_text("Imaging studies")
    page.get_by_role("link", name=EHR_NAME).click()

    # the EHR's picker, top level on the EHR's site
    page.wait_for_url(f"{servers.ehr_origin}/oauth2/authorize?**")
    expect(page.locator("h1")).to_have_text("Choose a patient")
    expect(page.locator("ul.scopes")).to_contain_text("launch/patient")
    page.get_by_label("Daniel Okafor").check()
    page.get_by_role("button", name="Open record in app").click()

    page.wait_for_url(LIST_URL)
    assert page.url.startswith(f"{servers.app_origin}/l/"), page.url
    assert page.main_frame.parent_frame is None
    expect(page.locator("#patient-name")).to_have_text("OKAFOR, Daniel")
    expect(page.locator(STUDY_ROWS)).to_have_count(1)
    assert study_ids(page.main_frame) == ["is-1002-ct"]

    viewer_url, viewer = choose_study(page.main_frame, "is-1002-ct")
    assert study_uid_of(viewer_url) == servers.study("pt-1002", "is-1002-ct").study_instance_uid
    expect(viewer.locator(".study-head .patient")).to_contain_text("Daniel Okafor")
