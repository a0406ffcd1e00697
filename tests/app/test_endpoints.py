"""ImagingStudy.endpoint resolution (app/fhir/endpoints.py, app/launches/images.py:attach_endpoints): every shape."""

from __future__ import annotations

import pytest
import responses

from app.config import parse_settings
from app.dicom import SeriesSketch, representative_instance
from app.fhir.client import FhirClient
from app.fhir.endpoints import (EndpointReader, IncludedEndpoints, allowed_viewer, connection_types, endpoint_facts,
                                dstu2_dicomweb_base)
from app.fhir.imaging import StudySummary, summarize
from app.fhir.study_list import StudyList, search_path
from app.launches.images import attach_endpoints
from app.outbound import OutboundClient
from tests.support import ISS, registration

R4_SYSTEM = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
STU3_SYSTEM = "http://hl7.org/fhir/endpoint-connection-type"
UID = "2.25.17888725185605931195712849663681676109"
PACS = "https://pacs.example.org/dicom-web"
IID = "https://viewer.example.org/IHEInvokeImageDisplay"


def r4_endpoint(eid: str, code: str, address: str, system: str = R4_SYSTEM, **extra) -> dict:
    return {"resourceType": "Endpoint", "id": eid, "status": "active",
            "connectionType": {"system": system, "code": code}, "address": address, **extra}


def r5_endpoint(eid: str, code: str, address: str) -> dict:
    return {"resourceType": "Endpoint", "id": eid, "status": "active",
            "connectionType": [{"coding": [{"system": R4_SYSTEM, "code": code}]}], "address": address}


def study(*refs: str, **extra) -> dict:
    return {"resourceType": "ImagingStudy", "id": "s1", "status": "available", "subject": {"reference": "Patient/pt-1001"},
            "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{UID}"}],
            "endpoint": [{"reference": r} for r in refs], **extra}


def test_the_search_asks_for_the_endpoints():
    assert search_path("pt-1001", 50) == \
        "ImagingStudy?patient=pt-1001&_sort=-started&_count=50&_include=ImagingStudy%3Aendpoint"


@pytest.mark.parametrize("resource,types", [
    (r4_endpoint("a", "dicom-wado-rs", PACS), ("dicom-wado-rs",)),  # R4 Coding
    (r5_endpoint("a", "ihe-iid", IID), ("ihe-iid",)),  # R5 list of CodeableConcept
    (r4_endpoint("a", "dicom-wado-rs", PACS, system=STU3_SYSTEM), ("dicom-wado-rs",)),  # STU3 system
    ({"resourceType": "Endpoint", "connectionType": {"code": "ihe-iid"}, "address": IID}, ("ihe-iid",)),  # no system
    (r4_endpoint("a", "dicom-wado-rs", PACS, system="http://example.org/other"), ()),  # another code system
])
def test_connection_types_of_every_version(resource, types):
    assert connection_types(resource) == types


@pytest.mark.parametrize("change", [{"status": "off"}, {"status": "entered-in-error"}, {"address": "ftp://pacs/x"},
                                    {"address": "https://pacs.example.org/x?token=1"}, {"address": 7},
                                    {"resourceType": "Patient"}])
def test_unusable_endpoints_are_ignored(change):
    assert endpoint_facts({**r4_endpoint("a", "dicom-wado-rs", PACS), **change}) is None


def test_a_usable_endpoint_loses_its_trailing_slash():
    facts = endpoint_facts(r4_endpoint("a", "dicom-wado-rs", PACS + "/"))
    assert (facts.connection_types, facts.address) == (("dicom-wado-rs",), PACS)


def test_contained_endpoints_are_resolved_in_the_summary():
    summary = summarize(study("#iid", "#wado", contained=[r4_endpoint("iid", "ihe-iid", IID),
                                                         r4_endpoint("wado", "dicom-wado-rs", PACS)]))
    assert (summary.iid_address, summary.dicomweb_base, summary.endpoint_refs) == (IID, PACS, ())


def test_series_endpoints_are_kept_pending_after_the_study_ones():
    resource = study("Endpoint/a", series=[{"uid": "1.2.3", "endpoint": [{"reference": "Endpoint/b"},
                                                                          {"reference": "Endpoint/a"}]}])
    assert summarize(resource).endpoint_refs == ("Endpoint/a", "Endpoint/b")


def test_dstu2_url_gives_the_dicomweb_base():
    resource = {"resourceType": "ImagingStudy", "id": "d2", "uid": f"urn:oid:{UID}",
                "url": f"{PACS}/studies/{UID}", "patient": {"reference": "Patient/pt-1001"}}
    assert summarize(resource).dicomweb_base == PACS
    assert dstu2_dicomweb_base({"url": f"{PACS}/studies/1.2.3"}, UID) is None  # another study's URL


def _client() -> FhirClient:
    return FhirClient(ISS, "tok-good", OutboundClient(1, 2), included=IncludedEndpoints())


def _ehr(**extra):
    doc = registration()
    doc["ehrs"][0].update(extra)
    return parse_settings(doc).ehrs[0]


def _list(*resources) -> StudyList:
    return StudyList(studies=[summarize(r) for r in resources], banner=None)


@responses.activate
def test_included_endpoints_from_the_search_bundle_by_relative_reference_and_urn_uuid():
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": study("Endpoint/wado", "urn:uuid:0f6a6c9e-0b1e-4d4e-9a39-5a1c8d2f6b11"), "search": {"mode": "match"}},
        {"fullUrl": f"{ISS}/Endpoint/wado", "resource": r4_endpoint("wado", "dicom-wado-rs", PACS),
         "search": {"mode": "include"}},
        {"fullUrl": "urn:uuid:0f6a6c9e-0b1e-4d4e-9a39-5a1c8d2f6b11", "resource": r5_endpoint("x", "ihe-iid", IID),
         "search": {"mode": "include"}}]}
    responses.get(f"{ISS}/ImagingStudy", json=bundle)
    client = _client()
    matches = list(client.search("ImagingStudy", "ImagingStudy?patient=pt-1001", max_pages=1))
    assert [m["id"] for m in matches] == ["s1"]  # includes are not listed as studies
    assert len(client.included) == 4  # by fullUrl (absolute, urn:uuid) and by Endpoint/wado, Endpoint/x
    resolved = attach_endpoints(_list(*matches), client.included, client, _ehr(viewer_origins=["https://viewer.example.org"]),
                                EndpointReader())
    (summary,) = resolved.studies
    assert (summary.dicomweb_base, summary.iid_address, summary.viewer_base_url) == (PACS, IID, IID)
    assert summary.endpoint_refs == ()
    assert len(responses.calls) == 1  # nothing read separately


@responses.activate
def test_endpoints_the_server_did_not_include_are_read_once_and_cached():
    responses.get(f"{ISS}/Endpoint/wado", json=r4_endpoint("wado", "dicom-wado-rs", PACS))
    client, reader = _client(), EndpointReader()
    first = attach_endpoints(_list(study("Endpoint/wado")), client.included, client, _ehr(), reader)
    second = attach_endpoints(_list(study(f"{ISS}/Endpoint/wado/_history/2")), client.included, client, _ehr(), reader)
    assert first.studies[0].dicomweb_base == PACS == second.studies[0].dicomweb_base
    assert [c.request.headers["Authorization"] for c in responses.calls] == ["Bearer tok-good"]


@responses.activate
def test_endpoints_on_another_server_are_not_read_and_reads_are_bounded():
    for n in range(4):
        responses.get(f"{ISS}/Endpoint/e{n}", status=404)
    client = _client()
    studies = [study("https://other.example.org/fhir/Endpoint/x", f"Endpoint/e{n}") | {"id": f"s{n}"} for n in range(4)]
    resolved = attach_endpoints(_list(*studies), client.included, client, _ehr(), EndpointReader(), max_reads=2)
    assert [s.dicomweb_base for s in resolved.studies] == [None] * 4
    assert [c.request.url for c in responses.calls] == [f"{ISS}/Endpoint/e0", f"{ISS}/Endpoint/e1"]


@pytest.mark.parametrize("origins,expected", [
    (["https://viewer.example.org"], IID),
    (["https://VIEWER.example.org:443"], IID),  # normalised by the config
    (["https://viewer.example.org:8443"], None),
    ([], None),
])
def test_an_iid_endpoint_is_the_viewer_only_on_an_allowed_origin(origins, expected):
    ehr = _ehr(viewer_origins=origins)
    resolved = attach_endpoints(_list(study("#iid", contained=[r4_endpoint("iid", "ihe-iid", IID)])), None, _client(),
                                ehr, EndpointReader())
    assert resolved.studies[0].viewer_base_url == expected
    assert allowed_viewer("https://evil.example.org/IHEInvokeImageDisplay", ehr.viewer_origins) is None


def test_summaries_with_endpoints_survive_the_launch_store_json():
    summary = summarize(study("Endpoint/a", contained=[], series=[
        {"uid": "1.2.3", "modality": {"code": "SR"}, "number": 1, "instance": [{"uid": "1.2.3.1"}]},
        {"uid": "1.2.4", "modality": {"code": "CT"}, "number": 2,
         "instance": [{"uid": f"1.2.4.{n}", "number": n} for n in (3, 1, 2, 5, 4)]}]))
    assert (summary.thumbnail_series_uid, summary.thumbnail_instance_uid) == ("1.2.4", "1.2.4.3")
    again = StudySummary.from_json(summary.to_json())
    assert again == summary and again.endpoint_refs == ("Endpoint/a",)
    old = {k: v for k, v in summary.to_json().items() if k not in ("endpoint_refs", "dicomweb_base", "source")}
    assert StudySummary.from_json(old).source == "fhir"  # lists cached by an earlier version still load


@pytest.mark.parametrize("series,expected", [
    ([SeriesSketch("1.1", "KO", 1, (("1.1.1", 1),)), SeriesSketch("1.2", "MR", 2, (("1.2.1", 1), ("1.2.2", 2)))],
     ("1.2", "1.2.1")),  # KO skipped; middle of 2 is the first
    ([SeriesSketch("1.3", "CT", None, (("1.3.1", None),)), SeriesSketch("1.2", "CT", 5, (("1.2.9", 9),))],
     ("1.2", "1.2.9")),  # numbered series first
    ([SeriesSketch("1.1", "PR", 1, (("1.1.1", 1),)), SeriesSketch("1.2", "SR", 2, (("1.2.1", 1),))], None),
    ([SeriesSketch("1.2", "CT", 1, ())], None),
])
def test_representative_instance(series, expected):
    assert representative_instance(series) == expected
