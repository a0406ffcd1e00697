"""The cyclic collector is paused from a large search page's decoding until the page is summarised and dropped."""

from __future__ import annotations

import gc
import json
from concurrent.futures import ThreadPoolExecutor

import responses

from app.fhir import study_list
from app.fhir.client import FhirClient
from app.fhir.study_list import PageCursor, StudyListLimits, fetch_first_page, fetch_next_page, search_path
from app.outbound import OutboundClient
from app.outbound.jsonsafe import GC_PAUSE_BYTES
from tests.support import ISS, PATIENT, searchset, study

LIMITS = StudyListLimits(page_size=50, max_pages=5)


def _bundle(count: int, next_url: str | None = None, prefix: str = "s") -> dict:
    return searchset([study(f"{prefix}{i}", f"1.2.{i + 1}", description="x" * 200) for i in range(count)],
                     next_url=next_url)


@responses.activate
def test_collector_paused_while_a_large_page_is_summarised_not_while_waiting(monkeypatch):
    second = f"{ISS}/ImagingStudy?page=2"
    responses.get(f"{ISS}/{search_path(PATIENT, LIMITS.page_size)}", json=_bundle(400, second),
                  content_type="application/fhir+json")
    responses.get(second, json=_bundle(2, prefix="t"), content_type="application/fhir+json")
    seen: list[tuple[str, bool]] = []
    real = study_list.summarize
    monkeypatch.setattr(study_list, "summarize", lambda r: seen.append((r["id"], gc.isenabled())) or real(r))
    client = FhirClient(ISS, "tok", OutboundClient(1, 2))
    assert gc.isenabled()
    with ThreadPoolExecutor(2) as executor:
        listed, cursor = fetch_first_page(client, PATIENT, LIMITS, executor, want_banner=False)
    assert len(json.dumps(_bundle(400, second))) >= GC_PAUSE_BYTES > len(json.dumps(_bundle(2)))
    assert gc.isenabled() and len(listed.studies) == 400 and cursor.more
    assert {enabled for _, enabled in seen} == {False}  # the 400-study page: paused throughout
    seen.clear()
    page = fetch_next_page(client, cursor, PATIENT, LIMITS)
    assert [s.id for s in page.studies] == ["t0", "t1"] and not cursor.more
    assert seen == [("t0", True), ("t1", True)] and gc.isenabled()  # a small page: never paused


@responses.activate
def test_a_failing_large_page_resumes_the_collector():
    responses.get(f"{ISS}/{search_path(PATIENT, LIMITS.page_size)}", body=b'{"resourceType": "Bundle", "a": "'
                  + b"x" * GC_PAUSE_BYTES + b'", "a": 1}', content_type="application/fhir+json")
    client = FhirClient(ISS, "tok", OutboundClient(1, 2))
    cursor = PageCursor(next_url=f"{ISS}/{search_path(PATIENT, LIMITS.page_size)}", deadline=1e12)
    assert fetch_next_page(client, cursor, PATIENT, LIMITS).studies == []
    assert cursor.incomplete and "not valid JSON" in cursor.incomplete
    assert gc.isenabled()


def test_each_resource_is_let_go_once_summarised():
    resources = [study("a", "1.2.3"), study("b", "1.2.4", patient="pt-other"), study("c", "1.2.5")]
    cursor = PageCursor(next_url=None, deadline=1e12)
    page = study_list._keep(resources, PATIENT, cursor, LIMITS)  # noqa: SLF001
    assert [s.id for s in page.studies] == ["a", "c"] and page.excluded == 1 and cursor.kept == 2
    assert resources == [None, None, None]
