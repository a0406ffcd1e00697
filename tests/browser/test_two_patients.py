"""Scenario 3: two patients in two tabs of one browser (one cookie jar): each tab keeps its own patient."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .pages import app_frame, choose_study, launch_to_list, study_ids, wait_for_study_list
from .servers import study_uid_of

pytestmark = pytest.mark.browser

PATIENTS = {
    # id: (app banner, viewer's patient line, study ids, the study clicked)
    "pt-1001": ("WHITFIELD, Margaret Ann", "Margaret Ann Whitfield",
                {"is-1001-ct", "is-1001-mr", "is-1001-us-rgb", "is-1001-nm-bone", "is-1001-mr-abdomen",
                 "is-1001-us-cine", "is-1001-us-doppler", "is-1001-rtdose", "is-1001-ct-prior", "is-1001-mr-prior"},
                "is-1001-mr"),
    "pt-1002": ("OKAFOR, Daniel", "Daniel Okafor", {"is-1002-ct"}, "is-1002-ct"),
}


def _assert_shows_only(app, patient_id: str) -> None:
    banner, _, ids, _ = PATIENTS[patient_id]
    expect(app.locator("#patient-name")).to_have_text(banner)
    expect(app.locator(".app")).to_have_attribute("data-patient-id", patient_id)
    assert set(study_ids(app)) == ids
    other_names = [PATIENTS[p][0] for p in PATIENTS if p != patient_id]
    text = app.locator("body").inner_text()
    assert not any(name in text for name in other_names)


def _assert_viewer_shows(app, servers, patient_id: str) -> None:
    _, viewer_name, _, study_id = PATIENTS[patient_id]
    app.page.bring_to_front()  # the clinician switches to that tab (a background tab does not render)
    viewer_url, viewer = choose_study(app, study_id)
    assert study_uid_of(viewer_url) == servers.study(patient_id, study_id).study_instance_uid
    expect(viewer.locator(".study-head .patient")).to_contain_text(viewer_name)
    other_names = [PATIENTS[p][1] for p in PATIENTS if p != patient_id]
    assert not any(name in viewer.locator("body").inner_text() for name in other_names)


def test_two_tabs_two_patients_one_cookie_jar(context, servers):
    tab_a = context.new_page()
    app_a = launch_to_list(tab_a, servers, "pt-1001")
    tab_b = context.new_page()
    app_b = launch_to_list(tab_b, servers, "pt-1002")  # launched last: must not take over tab A
    assert app_a.url != app_b.url  # each tab has its own launch id

    _assert_shows_only(app_a, "pt-1001")
    _assert_shows_only(app_b, "pt-1002")

    # click through both, alternating
    _assert_viewer_shows(app_a, servers, "pt-1001")
    _assert_viewer_shows(app_b, servers, "pt-1002")

    # reload each app frame (the chosen study is in its URL): still its own patient and study
    for app, patient_id in ((app_a, "pt-1001"), (app_b, "pt-1002")):
        chosen = PATIENTS[patient_id][3]
        app.page.bring_to_front()
        with app.expect_navigation():
            app.evaluate("() => location.reload()")
        wait_for_study_list(app)
        assert app.url.endswith(f"/?study={chosen}")
        _assert_shows_only(app, patient_id)
        expect(app.locator("li.study.selected")).to_have_attribute("data-study-id", chosen)
    _assert_viewer_shows(app_b, servers, "pt-1002")
    _assert_viewer_shows(app_a, servers, "pt-1001")

    # reload the whole EHR tab A (a fresh launch of A, newer than B's): B is unaffected
    tab_a.bring_to_front()
    tab_a.reload()
    app_a = app_frame(tab_a)  # the reloaded chart has a new iframe
    wait_for_study_list(app_a)
    _assert_shows_only(app_a, "pt-1001")
    tab_b.bring_to_front()
    with app_b.expect_navigation():
        app_b.evaluate("() => location.reload()")
    wait_for_study_list(app_b)
    _assert_shows_only(app_b, "pt-1002")
    _assert_viewer_shows(app_b, servers, "pt-1002")
