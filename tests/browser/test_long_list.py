"""Scenario 7: a patient with 250 studies: newest 200 first, then all; server and client filters, keyboard, viewer."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .pages import STUDY_ROWS, choose_study, launch_to_list, record_frame_navigations, study_ids
from .servers import study_uid_of

pytestmark = pytest.mark.browser

PATIENT = "pt-1003"  # Rosa Elena Delgado: 250 generated studies over 15 years
VISIBLE_ROWS = f"{STUDY_ROWS}:visible"


@pytest.fixture
def studies(servers):
    """pt-1003's studies from the sandbox, newest first (the oracle for the list)."""
    records = sorted(servers.patient(PATIENT).studies, key=lambda s: s.started, reverse=True)
    assert len(records) == 250
    return records


def _ids(records, where=lambda s: True) -> list[str]:
    return [s.id for s in records if where(s)]


def _visible_ids(app) -> list[str]:
    return app.locator(VISIBLE_ROWS).evaluate_all("rows => rows.map(r => r.dataset.studyId)")


def _link(app, study_id: str):
    return app.locator(f'{STUDY_ROWS}[data-study-id="{study_id}"] a.study-link')


def _show_all(app, studies) -> None:
    """The newest 200 are rendered first; "Show 50 older studies" brings the rest."""
    expect(app.locator(STUDY_ROWS)).to_have_count(200)
    expect(app.locator("#study-count")).to_have_text("250")
    assert study_ids(app) == _ids(studies)[:200]
    expect(app.locator("#show-older")).to_have_text("Show 50 older studies")
    app.locator("#show-older").click()
    expect(app.locator(STUDY_ROWS)).to_have_count(250)
    expect(app.locator("#show-older")).to_have_count(0)


def test_paged_list_filters_on_the_server(page, servers, studies):
    app = launch_to_list(page, servers, PATIENT)
    mr = _ids(studies, lambda s: "MR" in s.modalities)
    app.select_option("#filter-modality", "MR")  # submits: the server filters all 250
    expect(app.locator("#study-count")).to_have_text("30")
    expect(app.locator(STUDY_ROWS)).to_have_count(30)
    assert study_ids(app) == mr
    oldest = studies[-1]
    app.select_option("#filter-modality", "")
    expect(app.locator(STUDY_ROWS)).to_have_count(200)
    app.fill("#filter-text", oldest.accession_number)
    app.press("#filter-text", "Enter")
    expect(app.locator("#study-count")).to_have_text("1")
    assert study_ids(app) == [oldest.id]


def test_all_250_studies_listed_and_filtered_client_side(page, servers, studies):
    app = launch_to_list(page, servers, PATIENT)
    _show_all(app, studies)
    navigations = record_frame_navigations(page)
    expect(app.locator(STUDY_ROWS)).to_have_count(250)
    expect(app.locator("#study-count")).to_have_text("250")
    assert study_ids(app) == _ids(studies)

    # modality select
    mr = _ids(studies, lambda s: "MR" in s.modalities)
    assert len(mr) == 30
    app.select_option("#filter-modality", "MR")
    expect(app.locator("#study-count")).to_have_text("30")
    expect(app.locator(VISIBLE_ROWS)).to_have_count(30)
    assert _visible_ids(app) == mr

    # free text, with the modality, then alone
    knee = _ids(studies, lambda s: "knee" in (s.description or "").lower())
    mr_knee = [i for i in knee if i in mr]
    assert (len(knee), len(mr_knee)) == (29, 8)
    app.fill("#filter-text", "Knee")
    expect(app.locator("#study-count")).to_have_text("8")
    assert _visible_ids(app) == mr_knee
    app.select_option("#filter-modality", "")
    expect(app.locator("#study-count")).to_have_text("29")
    assert _visible_ids(app) == knee

    # an accession number finds exactly its study
    target = studies[100]
    app.fill("#filter-text", target.accession_number)
    expect(app.locator("#study-count")).to_have_text("1")
    assert _visible_ids(app) == [target.id]

    app.fill("#filter-text", "")
    expect(app.locator("#study-count")).to_have_text("250")
    expect(app.locator(VISIBLE_ROWS)).to_have_count(250)
    assert navigations == []  # filtering never reloaded the app frame


def test_keyboard_moves_between_rows_and_a_click_opens_the_viewer(page, servers, studies):
    app = launch_to_list(page, servers, PATIENT)
    _show_all(app, studies)
    navigations = record_frame_navigations(page)
    ids = _ids(studies)

    _link(app, ids[0]).focus()
    app.locator(":focus").press("ArrowDown")
    expect(_link(app, ids[1])).to_be_focused()
    app.locator(":focus").press("ArrowDown")
    expect(_link(app, ids[2])).to_be_focused()
    app.locator(":focus").press("ArrowUp")
    expect(_link(app, ids[1])).to_be_focused()

    # with a modality filter, ArrowDown goes to the next row left by the filter
    mr = _ids(studies, lambda s: "MR" in s.modalities)
    app.select_option("#filter-modality", "MR")
    expect(app.locator("#study-count")).to_have_text("30")
    _link(app, mr[0]).focus()
    app.locator(":focus").press("ArrowDown")
    expect(_link(app, mr[1])).to_be_focused()

    # a click on that filtered row loads exactly its study
    viewer_url, viewer = choose_study(app, mr[1])
    uid = servers.study(PATIENT, mr[1]).study_instance_uid
    assert study_uid_of(viewer_url) == uid
    expect(viewer.locator(".study-head .uid")).to_have_text(f"Study UID {uid}")
    expect(viewer.locator(".study-head .patient")).to_contain_text("Rosa Elena Delgado")
    assert navigations == []  # the list page stayed; only the viewer frame loaded
