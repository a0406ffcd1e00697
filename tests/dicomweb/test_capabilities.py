"""The QIDO-RS fallback triggered by the CapabilityStatement (app/fhir/capabilities.py, app/launches/qido_list.py):
each FHIR version's shape, and the exact upstream requests a launch makes (none to metadata without QIDO-RS)."""

from __future__ import annotations

import re

import pytest
import responses

from app import create_app
from app.fhir.capabilities import read_capabilities
from tests.app.conftest import MockedEhr, good_token
from tests.dicomweb.test_qido_list import ISSUER, MRN_SYSTEM, PACS, qido_study
from tests.support import ISS, PATIENT, WELL_KNOWN, registration, searchset, study

METADATA = f"{ISS}/metadata"


def statement(*types: str, resource_type: str = "CapabilityStatement", interactions=("read", "search-type"),
              key: str = "interaction", version: str = "4.0.1") -> dict:
    return {"resourceType": resource_type, "fhirVersion": version, "rest": [
        {"mode": "client", "resource": [{"type": "ImagingStudy", key: [{"code": "search-type"}]}]},
        {"mode": "server", "resource": [{"type": t, key: [{"code": c} for c in interactions]} for t in types]}]}


@pytest.mark.parametrize("body,offers", [
    (statement("Patient", "ImagingStudy"), True),  # R4
    (statement("Patient", "ImagingStudy", version="5.0.0"), True),  # R5: same shape
    (statement("Patient", "ImagingStudy", version="3.0.2"), True),  # STU3
    (statement("Patient", "ImagingStudy", resource_type="Conformance", version="1.0.2"), True),  # DSTU2
    (statement("Patient", "ImagingStudy", resource_type="Conformance", key="operation", version="0.0.82"), True),
    (statement("Patient"), False),  # declared server, no ImagingStudy
    (statement("Patient", "ImagingStudy", interactions=("read",)), False),  # ImagingStudy without search-type
    (statement("Patient", resource_type="Conformance", version="1.0.2"), False),  # DSTU2 without it
    ({"resourceType": "CapabilityStatement", "rest": [{"mode": "server"}]}, False),  # no resource list at all
    ({"resourceType": "CapabilityStatement", "rest": [{"mode": "client", "resource": []}]}, None),  # no server
    ({"resourceType": "Bundle", "type": "searchset"}, None),
    ({"resourceType": "CapabilityStatement", "rest": "server"}, None),
    ({"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "resource": [
        {"type": ["ImagingStudy"], "interaction": [{"code": "search-type"}]},
        {"type": "ImagingStudy", "interaction": "search-type"}, "junk"]}]}, False),  # wrong types ignored
    ([], None), ("x", None),
])
def test_each_shape_says_whether_imagingstudy_search_is_offered(body, offers):
    capabilities = read_capabilities(body)
    assert (None if capabilities is None else capabilities.offers_search("ImagingStudy")) == offers


@pytest.fixture
def make_ehr(tmp_path, monkeypatch):
    """``make_ehr(qido=True)``: a mocked EHR + PACS; ``ehr.app`` is kept so that a second launch shares its caches."""
    monkeypatch.setenv("PACS_AUTH", "pacs:s3cret")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        def make(qido: bool = True) -> MockedEhr:
            doc = registration()
            if qido:
                doc["ehrs"][0]["dicomweb"] = {"base_url": PACS, "basic_auth_env": "PACS_AUTH", "patient_identifiers": [
                    {"system": MRN_SYSTEM, "issuer_of_patient_id": ISSUER}]}
            app = create_app(doc, secret_key="test-secret", store_path=tmp_path / "launches.sqlite3")
            ehr = MockedEhr(app.test_client(), mock)
            ehr.well_known(WELL_KNOWN)
            mock.get(f"{ISS}/Patient/{PATIENT}", json={"resourceType": "Patient", "id": PATIENT, "identifier": [
                {"system": MRN_SYSTEM, "value": "M0041001"}]})
            mock.get(f"{PACS}/studies", content_type="application/dicom+json", json=[
                qido_study("1.2.1", date="20230101"), qido_study("1.2.3", patient_id="M0049999")])
            return ehr
        yield make


def _search(ehr: MockedEhr, body: dict | None = None, status: int = 200) -> None:
    ehr.mock.get(f"{ISS}/ImagingStudy", status=status, json=body if body is not None else searchset(
        [study("s-fhir", "1.2.840.1")]))


def _launch(ehr: MockedEhr, launch: str = "L-1") -> str:
    callback = ehr.authorized(good_token(need_patient_banner=False), launch=launch)
    page = ehr.client.get(callback.headers["Location"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html[:400]
    return html


def _ids(html: str) -> list[str]:
    return re.findall(r'data-study-id="([^"]+)"', html)


def _counts(ehr: MockedEhr) -> tuple[int, int, int]:
    """(metadata, ImagingStudy searches, QIDO-RS study searches) requested so far."""
    return len(ehr.calls_to("/fhir/metadata")), len(ehr.calls_to("/fhir/ImagingStudy")), \
        len(ehr.calls_to("/dicom-web/studies"))


def test_without_qido_rs_configured_no_metadata_request_is_made(make_ehr):
    ehr = make_ehr(qido=False)
    ehr.mock.get(METADATA, json=statement("Patient"))  # would say "no ImagingStudy": never asked
    _search(ehr)
    assert _ids(_launch(ehr)) == ["s-fhir"]
    assert _counts(ehr) == (0, 1, 0)


def test_a_declared_search_keeps_the_fhir_list_and_the_answer_is_cached_per_iss(make_ehr):
    ehr = make_ehr()
    ehr.mock.get(METADATA, json=statement("Patient", "ImagingStudy"))
    _search(ehr)
    assert _ids(_launch(ehr)) == ["s-fhir"]
    assert _counts(ehr) == (1, 1, 0)
    assert ehr.calls_to("/fhir/metadata")[0].request.headers.get("Authorization") is None  # no token for metadata
    assert _ids(_launch(ehr, launch="L-2")) == ["s-fhir"]
    assert _counts(ehr) == (1, 2, 0)  # the second launch reuses the answer


@pytest.mark.parametrize("media", ["application/fhir+json", "application/json+fhir"])
def test_an_undeclared_search_lists_from_qido_rs_even_when_the_search_answers_empty(make_ehr, media):
    ehr = make_ehr()
    ehr.mock.get(METADATA, json=statement("Patient", resource_type="Conformance", version="1.0.2"), content_type=media)
    _search(ehr, {"resourceType": "Bundle", "type": "searchset", "total": 0})
    html = _launch(ehr)
    assert _ids(html) == ["1.2.1"]
    assert "1 result(s) for another patient were ignored." in html
    assert "these studies come from the PACS at https://pacs.example.org (DICOMweb QIDO-RS)" in html
    assert _counts(ehr) == (1, 1, 1)  # metadata alongside the first page, then QIDO-RS
    assert _ids(_launch(ehr, launch="L-2")) == ["1.2.1"]
    assert _counts(ehr) == (1, 1, 2)  # known now: no metadata, no ImagingStudy search


def test_an_undeclared_search_that_fails_otherwise_also_lists_from_qido_rs(make_ehr):
    ehr = make_ehr()
    ehr.mock.get(METADATA, json=statement("Patient"))
    _search(ehr, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid"}]}, 400)
    assert _ids(_launch(ehr)) == ["1.2.1"]
    assert _counts(ehr) == (1, 1, 1)


@pytest.mark.parametrize("answer", [
    {"status": 500, "json": {"resourceType": "OperationOutcome"}},
    {"status": 200, "body": "<html>metadata</html>", "content_type": "text/html"},
    {"status": 200, "body": "{not json", "content_type": "application/fhir+json"},
    {"status": 200, "json": {"resourceType": "Bundle", "type": "searchset"}},
    {"status": 302, "headers": {"Location": "https://elsewhere.example.org/metadata"}},
])
def test_an_unreadable_metadata_answer_leaves_the_decision_to_the_search(make_ehr, answer):
    ehr = make_ehr()
    ehr.mock.get(METADATA, **answer)
    _search(ehr)
    assert _ids(_launch(ehr)) == ["s-fhir"]  # a 200 search stays the list
    assert _counts(ehr) == (1, 1, 0)


def test_an_unreadable_metadata_answer_and_a_404_search_still_fall_back(make_ehr):
    ehr = make_ehr()
    ehr.mock.get(METADATA, status=404, json={"resourceType": "OperationOutcome"})
    _search(ehr, {"resourceType": "OperationOutcome"}, 404)
    assert _ids(_launch(ehr)) == ["1.2.1"]
    assert _counts(ehr) == (1, 1, 1)


def test_a_declared_search_that_fails_with_500_is_not_hidden(make_ehr):
    ehr = make_ehr()
    ehr.mock.get(METADATA, json=statement("ImagingStudy"))
    _search(ehr, {"resourceType": "OperationOutcome"}, 500)
    callback = ehr.authorized(good_token(need_patient_banner=False))
    assert ehr.client.get(callback.headers["Location"]).status_code == 502
    assert _counts(ehr) == (1, 1, 0)


def test_the_cache_shares_one_request_per_iss_and_survives_a_closed_executor():
    from concurrent.futures import ThreadPoolExecutor

    from app.fhir.capabilities import CapabilityCache
    from app.outbound import OutboundClient

    with responses.RequestsMock() as mock:
        mock.get(METADATA, json=statement("ImagingStudy"))
        cache, outbound = CapabilityCache(), OutboundClient(1, 2)
        with ThreadPoolExecutor(2) as pool:
            futures = [cache.lookup(ISS, outbound, pool) for _ in range(3)]
            assert all(f.result(5).offers_search("ImagingStudy") for f in futures)
        assert len(mock.calls) == 1
        assert cache.lookup(ISS, outbound, pool).result(0).offers_search("ImagingStudy")  # a hit needs no pool
        other = "https://other.example.org/fhir"
        assert cache.lookup(other, outbound, pool).result(0) is None  # pool shut down: no answer, no exception
        assert len(mock.calls) == 1
