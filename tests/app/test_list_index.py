"""Per-list indexes (:mod:`app.web.list_index`): built once per list object, rebuilt when the list changes, the same
answers as the whole-list computations; the rendered default view kept for its minute, every other view rendered."""

from __future__ import annotations

from datetime import datetime, timezone

from app.config import ViewerSettings
from app.fhir.imaging import summarize
from app.fhir.reports import ReportSummary, reports_by_study
from app.fhir.study_list import StudyList
from app.web.list_index import cached_page, index_of
from app.web.presenter import DISPLAY_ROWS, build_study_list_page
from app.web.search import StudyQuery
from tests.support import PATIENT, VIEWER, study


def a_list(n: int = 5) -> StudyList:
    studies = [summarize(study(f"is-{i}", f"2.25.{100 + i}", f"2020-01-{i + 1:02d}T10:00:00Z",
                               modality=("CT", "MR", "US")[i % 3])) for i in range(n)]
    studies.reverse()
    report = ReportSummary(id="r-1", status="final", issued="2020-01-02", effective=None, code_text="CT report",
                           performers=(), conclusion=None, text=None, html=None, pdf_index=None, pdf_title=None,
                           study_refs=("is-1",), accessions=())
    return StudyList(studies=studies, banner=None, reports=[report])


def page_of(study_list: StudyList, **overrides):
    args = dict(launch_id="L", patient_id=PATIENT, study_list=study_list, show_banner=False,
                viewer=ViewerSettings(base_url=VIEWER), query=StudyQuery(), requested_ids=[], show=DISPLAY_ROWS,
                page_url="/l/L/")
    return build_study_list_page(**{**args, **overrides})


def test_the_index_answers_as_the_whole_list_does_and_is_built_once_per_list():
    study_list = a_list()
    index = index_of(study_list)
    assert index is index_of(study_list)
    assert index.modalities == ["CT", "MR", "US"]
    assert index.reports == reports_by_study(study_list.studies, study_list.reports)
    assert [index.find(s.id) for s in study_list.studies] == [study_list.find(s.id) for s in study_list.studies]
    assert index.find("is-404") is None
    study_list.studies.append(summarize(study("is-9", "2.25.9", "2019-01-01T10:00:00Z", modality="NM")))
    rebuilt = index_of(study_list)  # changed in place: a fresh index
    assert rebuilt is not index and rebuilt.modalities == ["CT", "MR", "NM", "US"]
    assert index_of(a_list()) is not rebuilt  # another list, its own index


def test_rows_of_a_page_are_the_same_whether_built_or_reused():
    study_list = a_list(7)
    first, second = page_of(study_list), page_of(study_list)
    assert first.rows is second.rows  # the default rows, built once within the minute
    fresh = page_of(a_list(7))
    assert [(r.study.id, r.href, r.viewer_url, r.prior_href, r.report) for r in first.rows] == \
        [(r.study.id, r.href, r.viewer_url, r.prior_href, r.report) for r in fresh.rows]
    assert first.all_modalities == ["CT", "MR", "US"] and first.rows[-2].report.id == "r-1"
    filtered = page_of(study_list, query=StudyQuery(modality="MR"))
    assert [r.study.id for r in filtered.rows] == ["is-4", "is-1"]


def test_only_the_default_view_is_kept_rendered_and_only_for_its_minute():
    study_list = a_list()
    renders = []

    def render(label):
        def go():
            renders.append(label)
            return f"<html>{label} {len(renders)} é</html>"
        return go

    minute = datetime(2026, 12, 2, 14, 10, 5, tzinfo=timezone.utc)
    default = page_of(study_list)
    first = cached_page(default, render("default"), default_rows=DISPLAY_ROWS, now=minute)
    assert first == "<html>default 1 é</html>".encode()
    assert cached_page(page_of(study_list), render("default"), default_rows=DISPLAY_ROWS,
                       now=minute.replace(second=59)) == "<html>default 1 é</html>".encode()
    assert cached_page(default, render("default"), default_rows=DISPLAY_ROWS,
                       now=minute.replace(minute=11)) == "<html>default 2 é</html>".encode()
    assert cached_page(default, render("other user"), default_rows=DISPLAY_ROWS, header=("Dr. B",),
                       now=minute.replace(minute=11)) == "<html>other user 3 é</html>".encode()
    for other in (page_of(study_list, requested_ids=["is-1"]), page_of(study_list, query=StudyQuery(text="CT")),
                  page_of(study_list, requested_ids=["is-404"]), page_of(study_list, launch_id="L2")):
        cached_page(other, render("other"), default_rows=DISPLAY_ROWS, now=minute)
        cached_page(other, render("other"), default_rows=DISPLAY_ROWS, now=minute)
    assert renders.count("other") == 2 + 2 + 2 + 1  # a selection, a filter, a missing study: every time


def test_the_kept_rows_and_page_follow_the_studies_shown_and_their_order():
    study_list = a_list(6)
    default = page_of(study_list)
    # the same list shown in another order (another sort) gets its own rows, not the default's kept ones
    other = page_of(study_list, query=StudyQuery(sort="oldest"))
    assert [r.study.id for r in other.rows] == [r.study.id for r in reversed(default.rows)] \
        != [r.study.id for r in default.rows]
    minute = datetime(2026, 12, 2, 14, 10, tzinfo=timezone.utc)
    assert cached_page(page_of(study_list), lambda: "A", default_rows=DISPLAY_ROWS, header=(b"",), now=minute) == b"A"
    assert cached_page(page_of(study_list), lambda: "B", default_rows=DISPLAY_ROWS, header=(b"sort=old",),
                       now=minute) == b"B"  # another query string: another page
