"""Scenario 7: a patient with 250 studies: newest 200 first, then all; server and client filters, keyboard, viewer;
older pages arriving in place while the list is shown (issue 14); sort, year headings and the zone (issue 10 item 4)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .pages import STUDY_ROWS, choose_study, launch_to_list, record_frame_navigations, study_ids
from .servers import study_uid_of
from .test_accessibility import a11y_page, axe_script, serious_violations  # noqa: F401 - fixtures

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


# ---- issue 14: the list is shown after its first page; older pages arrive without a reload ------------------
@pytest.fixture(scope="module")
def paged_servers(browser, tmp_path_factory):
    """The sandbox and an app reading 50 studies per page (pt-1003: five pages), on their own ports."""
    from dataclasses import replace

    from .servers import start_servers

    def fifty_per_page(flask_app):
        svc = flask_app.extensions["imaging_app"]
        svc.settings = replace(svc.settings, fhir=replace(svc.settings.fhir, page_size=50))

    with start_servers(tmp_path_factory.mktemp("paged-store"), configure_app=fifty_per_page) as running:
        yield running


@pytest.fixture
def held_pages(monkeypatch):
    """Later pages wait until the test releases them (``.set()``): the loading state can be seen."""
    import threading

    from app.launches import study_lists
    release = threading.Event()
    real = study_lists.fetch_next_page

    def held(*args, **kwargs):
        assert release.wait(20), "the test never released the older pages"
        return real(*args, **kwargs)

    monkeypatch.setattr(study_lists, "fetch_next_page", held)
    yield release
    release.set()


def test_older_pages_arrive_in_place_with_a_loading_state_and_show_older_keeps_the_position(
        page, paged_servers, held_pages):
    records = sorted(paged_servers.patient(PATIENT).studies, key=lambda s: s.started, reverse=True)
    ids = [s.id for s in records]
    app = launch_to_list(page, paged_servers, PATIENT)
    navigations = record_frame_navigations(page)
    loading = app.locator("#list-loading")
    expect(loading).to_be_visible()
    expect(loading).to_have_attribute("role", "status")
    expect(loading).to_have_text("Loading older studies… 50 loaded so far.")
    expect(app.locator("#study-count")).to_have_text("50")
    assert study_ids(app) == ids[:50]
    app.locator(f'{STUDY_ROWS}[data-study-id="{ids[3]}"] a.study-link').focus()

    held_pages.set()
    expect(app.locator("#study-count")).to_have_text("250")
    expect(loading).to_be_hidden()
    expect(app.locator(STUDY_ROWS)).to_have_count(200)  # appended in place up to the page's 200 rows
    assert study_ids(app) == ids[:200]
    expect(_link(app, ids[3])).to_be_focused()  # the reading position and focus stayed
    expect(app.locator("#show-older")).to_have_text("Show 50 older studies")
    expect(app.locator("#list-incomplete")).to_have_count(0)
    assert app.evaluate("() => document.getElementById('study-list').dataset.complete") == "false"

    # "Show older" appends the rest below the last row: the scrolled position does not move
    scroller = app.locator(".list-scroll")
    scroller.evaluate("el => { el.scrollTop = el.scrollHeight; }")  # at the bottom: the link is in view
    before = scroller.evaluate("el => el.scrollTop")
    top_row = app.evaluate("""() => { const box = document.querySelector('.list-scroll').getBoundingClientRect();
      return [...document.querySelectorAll('#study-list li.study')].find(r => r.getBoundingClientRect().bottom > box.top).dataset.studyId; }""")
    app.locator("#show-older").click()
    expect(app.locator(STUDY_ROWS)).to_have_count(250)
    assert study_ids(app) == ids
    assert before > 10_000 and scroller.evaluate("el => el.scrollTop") == before
    assert app.evaluate("""() => { const box = document.querySelector('.list-scroll').getBoundingClientRect();
      return [...document.querySelectorAll('#study-list li.study')].find(r => r.getBoundingClientRect().bottom > box.top).dataset.studyId; }""") == top_row
    expect(app.locator("#show-older")).to_have_count(0)
    assert "show=400" in app.url
    assert navigations == []  # no reload at any point

    # the whole list is on the page now: the live filter works in place over all 250
    knee = [s.id for s in records if "knee" in (s.description or "").lower()]
    app.fill("#filter-text", "Knee")
    expect(app.locator("#study-count")).to_have_text(str(len(knee)))
    assert _visible_ids(app) == knee
    assert navigations == []


def test_the_no_js_show_older_link_still_works(page, servers, studies):
    app = launch_to_list(page, servers, PATIENT)
    expect(app.locator("#study-count")).to_have_text("250")
    href = app.locator("#show-older").get_attribute("href")
    assert "show=400" in href
    app.goto(servers.app_origin + href) if href.startswith("/") else app.goto(href)
    expect(app.locator(STUDY_ROWS)).to_have_count(250)


def test_sort_and_year_headings_are_kept_in_the_url_and_read_by_axe(a11y_page, servers, studies, axe_script):
    app = launch_to_list(a11y_page, servers, PATIENT)
    expect(app.locator("#study-count")).to_have_text("250")
    headings = app.locator("#study-list li.year-separator")
    years = sorted({s.started.year for s in studies[:200]}, reverse=True)
    expect(headings).to_have_count(len(years))
    assert headings.all_text_contents() == [str(y) for y in years]
    assert serious_violations(app, axe_script) == []
    with app.expect_navigation():
        app.select_option("#sort", "oldest")
    assert "sort=oldest" in app.url
    oldest = sorted(studies, key=lambda s: s.started)
    assert study_ids(app)[:200] == [s.id for s in oldest[:200]]
    assert app.locator("#study-list li.year-separator").first.text_content() == str(oldest[0].started.year)
    # keyboard: the headings are not stops; ArrowDown goes from the last row of a year to the next year's first
    first_of_second_year = next(s for s in oldest if s.started.year != oldest[0].started.year)
    last_of_first_year = oldest[oldest.index(first_of_second_year) - 1]
    _link(app, last_of_first_year.id).focus()
    app.locator(":focus").press("ArrowDown")
    expect(_link(app, first_of_second_year.id)).to_be_focused()
    # a click keeps the order in the URL (the app's own history entry), and a reload shows the same order
    _link(app, oldest[2].id).click()
    app.wait_for_url(lambda url: "sort=oldest" in url and f"study={oldest[2].id}" in url)
    with app.expect_navigation():
        app.evaluate("() => location.reload()")
    assert study_ids(app)[:3] == [s.id for s in oldest[:3]]
    expect(app.locator(f"{STUDY_ROWS}.selected")).to_have_attribute("data-study-id", oldest[2].id)
    expect(app.locator("#list-zone")).to_have_text("Times in UTC")
