"""Scenario 5: the chart's fault options end on the app's clear error page inside the frame (or recover)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .pages import ERROR_TITLE, STUDY_ROWS, app_frame, launch_to_list, record_frame_navigations, wait_for_study_list

pytestmark = pytest.mark.browser

MAX_FRAME_DOCUMENTS = 5  # a relaunch: launch, authorize, callback (+ list); more means a loop


def _paths(servers, navigations: list[str]) -> list[str]:
    """The frame's document requests as ``app:/path`` / ``ehr:/path`` (no query)."""
    names = {servers.app_origin: "app:", servers.ehr_origin: "ehr:"}
    result = []
    for url in navigations:
        origin = next((o for o in names if url.startswith(o + "/")), "")
        result.append(names.get(origin, "?") + url[len(origin):].split("?")[0])
    return result


def _relaunch_with(page: Page, servers, patient_id: str, *flags: str):
    """Open the chart, let the normal launch finish, then tick *flags* in the options form and Relaunch.

    Returns ``(app frame, frame navigations, app document responses)`` recorded from the relaunch on.
    """
    launch_to_list(page, servers, patient_id)
    page.locator("details.options summary").click()
    for flag in flags:
        page.locator(f'form.options-form input[type=checkbox][name="{flag}"]').check()
    documents = []
    page.on("response", lambda r: documents.append((r.url, r.status))
            if r.request.is_navigation_request() and r.frame.parent_frame == page.main_frame
            and r.url.startswith(servers.app_origin) else None)
    navigations = record_frame_navigations(page)
    with page.expect_navigation():
        page.get_by_role("button", name="Relaunch").click()
    assert page.url == servers.chart_url(patient_id, tab="imaging")
    return app_frame(page), navigations, documents


def _assert_settled(page: Page, app, navigations: list[str]) -> None:
    """No further navigations once the network is idle: a loop would keep committing documents."""
    app.wait_for_load_state("networkidle")
    page.wait_for_load_state("networkidle")
    assert 1 <= len(navigations) <= MAX_FRAME_DOCUMENTS, navigations


CALLBACK_HOPS = ["app:/launch", "ehr:/oauth2/authorize", "app:/callback"]


@pytest.mark.parametrize(("flags", "title", "status", "hops"), [
    (("deny",), "Access was denied in the EHR", 403, CALLBACK_HOPS),
    (("narrow_scope",), "The EHR did not grant access to imaging studies", 403, CALLBACK_HOPS),
    (("no_patient",), "This launch carried no patient", 400, CALLBACK_HOPS),
    # the code exchange succeeds; the list page finds the token expired and the refresh refused
    (("expired_token", "refresh_fails"), "Your session has expired", 401, CALLBACK_HOPS + ["app:/l/<id>/"]),
], ids=["deny", "narrow_scope", "no_patient", "expired_token+refresh_fails"])
def test_fault_ends_on_the_apps_error_page_in_the_frame(page, servers, flags, title, status, hops):
    app, navigations, documents = _relaunch_with(page, servers, "pt-1001", *flags)

    expect(app.locator(ERROR_TITLE)).to_have_text(title)
    _assert_settled(page, app, navigations)
    # the browser already holds the app's cookie (no cookie check); one pass, no loop
    assert [re.sub(r"^app:/l/[^/]+/$", "app:/l/<id>/", p) for p in _paths(servers, navigations)] == hops
    assert app.parent_frame == page.main_frame
    assert app.url.startswith(servers.app_origin), app.url
    assert documents[-1] == (app.url, status), documents
    expect(app.locator("main.message p.message-action")).not_to_be_empty()
    expect(app.locator("main.message p.message-code")).to_have_text(f"Status {status}")
    html = app.content()
    assert "Traceback" not in html and 'File "' not in html
    expect(app.locator(STUDY_ROWS)).to_have_count(0)
    assert page.url == servers.chart_url("pt-1001", tab="imaging")  # the EHR stayed put


def test_expired_token_with_refresh_recovers_and_shows_the_list(page, servers):
    app, navigations, documents = _relaunch_with(page, servers, "pt-1002", "expired_token")

    wait_for_study_list(app)
    _assert_settled(page, app, navigations)
    assert _paths(servers, navigations)[:3] == CALLBACK_HOPS
    assert len(navigations) == 4 and app.url == navigations[-1]
    expect(app.locator("#patient-name")).to_have_text("OKAFOR, Daniel")
    expect(app.locator(STUDY_ROWS)).to_have_count(1)
    expect(app.locator(f'{STUDY_ROWS}[data-study-id="is-1002-ct"]')).to_be_visible()
    assert documents[-1] == (app.url, 200), documents
    # the relaunch's first token was born expired (expires_in 0); the app refreshed it exactly once
    relaunch = [r for r in servers.token_records()
                if r.context.patient == "pt-1002" and r.context.faults.expired_token]
    assert sorted(r.expires_in for r in relaunch) == [0, 3600]
