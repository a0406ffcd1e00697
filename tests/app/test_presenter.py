"""The study-list presenter as the template receives it (Flask-Testing: the template's context, not its HTML)."""

from __future__ import annotations

import responses
from flask_testing import TestCase

from app import create_app
from tests.app.conftest import MockedEhr, good_token
from tests.support import ISS, PATIENT, UID_A, UID_B, VIEWER, query_of, registration, searchset, study


class StudyListPageTest(TestCase):
    """Launches against a mocked EHR, then reads the ``page`` handed to ``studies.html``."""

    render_templates = True

    def create_app(self):
        import tempfile
        self._tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self._tmp.cleanup)
        return create_app(registration(), secret_key="presenter", store_path=f"{self._tmp.name}/s.sqlite3")

    def setUp(self):
        self.mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        self.mock.start()
        self.addCleanup(self.mock.stop)
        self.addCleanup(self.mock.reset)
        self.ehr = MockedEhr(self.client, self.mock)
        self.ehr.well_known()
        self.mock.get(f"{ISS}/Patient/{PATIENT}", json={"resourceType": "Patient", "id": PATIENT})
        self.mock.get(f"{ISS}/ImagingStudy", json=searchset([
            study("is-ct", UID_A, "2024-03-01T10:00:00Z", modality="CT", description="CT Head"),
            study("is-mr", UID_B, "2023-03-01T10:00:00Z", modality="MR", description="MR Knee"),
            study("is-none", None, "2022-03-01T10:00:00Z", modality="MR", description="MR Old")]))
        callback = self.ehr.authorized(good_token())
        self.list_url = callback.headers["Location"]

    def test_page_rows_selection_and_viewer_url(self):
        self.client.get(self.list_url, query_string={"study": ["is-mr", "is-ct", "is-mr", "unknown"]})
        self.assertTemplateUsed("studies.html")
        page = self.get_context_variable("page")
        self.assertEqual([r.study.id for r in page.rows], ["is-ct", "is-mr", "is-none"])
        self.assertEqual(page.rows[0].viewer_url, f"{VIEWER}?requestType=STUDY&studyUID={UID_A}&viewerType=IHE_BIR")
        self.assertIsNone(page.rows[2].viewer_url)
        self.assertEqual(page.selected_ids, ["is-mr", "is-ct"])  # order kept, duplicate dropped
        self.assertEqual(query_of(page.viewer_url)["studyUID"], f"{UID_B},{UID_A}")
        self.assertEqual((page.missing_selection, page.dropped_selection), (1, 0))
        self.assertEqual(page.all_modalities, ["CT", "MR"])
        self.assertTrue(page.complete)

    def test_filtered_page_is_not_complete_and_counts_matches(self):
        self.client.get(self.list_url, query_string={"modality": "MR", "q": "knee"})
        page = self.get_context_variable("page")
        self.assertEqual([r.study.id for r in page.rows], ["is-mr"])
        self.assertEqual((page.matching, page.more, page.complete), (1, 0, False))


def test_a_studys_own_allowlisted_viewer_is_used_and_mixed_comparisons_use_the_registered_one():
    from dataclasses import replace

    from app.config import ViewerSettings
    from app.fhir.imaging import summarize
    from app.fhir.study_list import StudyList
    from app.web.presenter import build_study_list_page
    from app.web.search import StudyQuery
    own = "https://pacs-b.example.org/IHEInvokeImageDisplay"
    a = replace(summarize(study("is-a", UID_A, "2024-03-01T10:00:00Z")), viewer_base_url=own)
    b = summarize(study("is-b", UID_B, "2023-03-01T10:00:00Z"))
    page = build_study_list_page(
        launch_id="L", patient_id=PATIENT, study_list=StudyList(studies=[a, b], banner=None), show_banner=False,
        viewer=ViewerSettings(base_url=VIEWER), query=StudyQuery(), requested_ids=["is-a", "is-b"], show=200,
        page_url="/l/L/")
    assert [r.viewer_url.split("?")[0] for r in page.rows] == [own, VIEWER]
    assert page.viewer_url.startswith(f"{VIEWER}?requestType=STUDY&studyUID={UID_A}%2C{UID_B}")


def test_the_prior_index_finds_what_a_full_scan_finds():
    import random
    from dataclasses import replace

    from app.fhir.imaging import summarize
    from app.web.presenter import PriorIndex
    rng = random.Random(7)
    studies = []
    for i in range(300):
        day = f"20{rng.randint(10, 24)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:00:00Z"
        status = rng.choice(["available"] * 8 + ["cancelled", "entered-in-error"])
        summary = summarize(study(f"is-{i}", f"2.25.{i}", day, modality=rng.choice(["CT", "MR", "US"]), status=status))
        studies.append(replace(summary, body_sites=tuple(rng.sample(["head", "chest", "knee"], rng.randint(0, 1)))))

    def full_scan(current):
        candidates = [o for o in studies if o.id != current.id and o.viewable and not o.status_flag
                      and o.started_sort < current.started_sort and current.modalities[0] in o.modalities
                      and not ({s for s in current.body_sites} and {s for s in o.body_sites}
                               and not set(current.body_sites) & set(o.body_sites))]
        return max(candidates, key=lambda o: o.started_sort, default=None)

    index = PriorIndex(studies)
    found = [(index.prior_of(s) or s).id for s in studies]
    expected = [(full_scan(s) or s).id for s in studies]
    assert found == expected and sum(a != s.id for a, s in zip(found, studies)) > 200


# ---- sort, year headings, one time zone (issue 10 item 4) ---------------------------------------------------
def _summaries(*rows):
    from app.fhir.imaging import summarize
    return [summarize(study(i, f"2.25.{n}", started, modality=m)) for n, (i, started, m) in enumerate(rows)]


def _page(studies, *, sort="newest", time_zone=None, show=200, q=""):
    from app.config import ViewerSettings
    from app.fhir.study_list import StudyList
    from app.web.presenter import build_study_list_page
    from app.web.search import StudyQuery
    return build_study_list_page(
        launch_id="L", patient_id=PATIENT, study_list=StudyList(studies=studies, banner=None), show_banner=False,
        viewer=ViewerSettings(base_url=VIEWER, time_zone=time_zone), query=StudyQuery.from_args("", q, sort),
        requested_ids=[], show=show, page_url="/l/L/")


MIXED = [("is-mr-23", "2023-05-01T10:00:00Z", "MR"), ("is-ct-24", "2024-01-01T10:00:00Z", "CT"),
         ("is-undated", "", "US"), ("is-ct-22", "2022-05-01", "CT"), ("is-us-24", "2024-06-01T08:00:00Z", "US")]


def test_sort_newest_oldest_and_by_modality_undated_last():
    studies = _summaries(*MIXED)
    order = {sort: [r.study.id for r in _page(studies, sort=sort).rows] for sort in ("newest", "oldest", "modality")}
    assert order == {"newest": ["is-us-24", "is-ct-24", "is-mr-23", "is-ct-22", "is-undated"],
                     "oldest": ["is-ct-22", "is-mr-23", "is-ct-24", "is-us-24", "is-undated"],
                     "modality": ["is-ct-24", "is-ct-22", "is-mr-23", "is-us-24", "is-undated"]}
    assert _page(studies, sort="bogus").query.sort == "newest"  # an unknown order is the default


def test_row_links_keep_a_chosen_order_and_show_older_keeps_it_too():
    studies = _summaries(*[(f"is-{n}", f"20{10 + n % 10}-01-01T10:00:00Z", "CT") for n in range(203)])
    newest, oldest = _page(studies), _page(studies, sort="oldest")
    assert newest.rows[0].href == "/l/L/?study=is-9" and "sort" not in newest.show_more_url
    assert oldest.rows[0].href == "/l/L/?study=is-0&sort=oldest"
    assert oldest.show_more_url == "/l/L/?show=400&sort=oldest" and oldest.more == 3


def test_year_headings_on_long_lists_in_date_orders_only():
    from zoneinfo import ZoneInfo

    from app.web.presenter import year_headings
    years = [2025] * 3 + [2024] * 10 + [2021] * 7
    studies = _summaries(*[(f"is-{n}", f"{y}-06-{28 - n:02d}T10:00:00Z", "CT") for n, y in enumerate(years)])
    studies.append(_summaries(("is-undated", "", "CT"))[0])
    rows = _page(studies).rows
    assert [(r.study.id, r.year_heading) for r in rows if r.year_heading] == [
        ("is-0", "2025"), ("is-3", "2024"), ("is-13", "2021"), ("is-undated", "Undated")]
    ordered = [r.study for r in rows]
    utc = ZoneInfo("UTC")
    # appended rows (after 3, after 4) get a heading only where the year changes from the row before them
    assert year_headings(ordered, 3, 2, utc) == ["2024", None]
    assert year_headings(ordered, 4, 2, utc) == [None, None]
    assert [r.year_heading for r in _page(studies, sort="oldest").rows][:1] == ["2021"]
    assert all(r.year_heading is None for r in _page(studies, sort="modality").rows)
    assert all(r.year_heading is None for r in _page(studies[:19]).rows)  # a short list has none
    # the year is the one of the list's zone: 2024-12-31 23:30 in Chicago is 2025-01-01 05:30 UTC
    late = _summaries(*[("is-nye", "2024-12-31T23:30:00-06:00", "CT")] +
                      [(f"is-{n}", "2024-06-01T10:00:00Z", "CT") for n in range(19)])
    assert _page(late, time_zone="America/Chicago").rows[0].year_heading == "2024"
    assert _page(late, time_zone="UTC").rows[0].year_heading == "2025"


def test_one_zone_for_the_whole_list_labelled_once():
    from zoneinfo import ZoneInfo

    from app.web.presenter import list_zone, offset_label, time_text
    studies = _summaries(("is-cdt", "2024-07-01T10:00:00-05:00", "CT"), ("is-utc", "2024-01-01T16:00:00Z", "MR"),
                         ("is-date", "2023-03-04", "US"), ("is-local", "2022-03-04T09:15:00", "CR"))
    page = _page(studies, time_zone="America/Chicago")
    assert page.zone_label == "Times in America/Chicago"
    assert [r.time_text for r in page.rows] == ["2024-07-01 10:00", "2024-01-01 10:00", "2023-03-04",
                                                "2022-03-04 09:15"]
    assert [r.study.started for r in page.rows][:2] == ["2024-07-01T10:00:00-05:00", "2024-01-01T16:00:00Z"]
    assert page.rows[1].selected_label == "Study 2024-01-01 10:00"  # the viewer bar: the list's zone too
    assert [r.time_text for r in _page(studies, time_zone="UTC").rows][:2] == ["2024-07-01 15:00", "2024-01-01 16:00"]
    assert _page(studies, time_zone="UTC").zone_label == "Times in UTC"
    assert time_text("2024-07-01T10:00:00+09:30", ZoneInfo("Europe/Paris")) == "2024-07-01 02:30"
    assert time_text(None, ZoneInfo("UTC")) == "" and time_text("2024-13-45T99:00", ZoneInfo("UTC")) == "2024-13-45 99:00"  # as recorded
    assert (offset_label(ZoneInfo("America/Chicago").utcoffset(__import__("datetime").datetime(2024, 1, 1))),
            offset_label(None)) == ("UTC\u221206:00", "UTC")
    list_zone.cache_clear()


def test_the_default_zone_is_the_servers(monkeypatch):
    from app.web.presenter import list_zone
    list_zone.cache_clear()
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    studies = _summaries(("is-a", "2024-01-01T00:00:00Z", "CT"))
    page = _page(studies)
    assert (page.zone_label, page.rows[0].time_text) == ("Times in Asia/Kolkata", "2024-01-01 05:30")
    list_zone.cache_clear()


def test_an_unknown_display_zone_stops_the_app_naming_it():
    import pytest as _pytest

    from app.config import ConfigError, parse_settings
    doc = registration(time_zone="Mars/Olympus")
    with _pytest.raises(ConfigError, match=r"viewer.time_zone: unknown time zone 'Mars/Olympus'"):
        parse_settings(doc)
