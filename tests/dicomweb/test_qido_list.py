"""The QIDO-RS fallback list against a mocked EHR and PACS (responses): mapping, filters, mismatches dropped."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses

from app import create_app
from tests.app.conftest import MockedEhr, good_token
from tests.support import ISS, PATIENT, WELL_KNOWN, registration

PACS = "https://pacs.example.org/dicom-web"
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.999.1"
ISSUER = "2.16.840.1.113883.3.999.1"


def qido_study(uid: str, patient_id: str = "M0041001", issuer: str | None = ISSUER, date: str = "20240105") -> dict:
    item = {"0020000D": {"vr": "UI", "Value": [uid]}, "00100020": {"vr": "LO", "Value": [patient_id]},
            "00080020": {"vr": "DA", "Value": [date]}, "00080030": {"vr": "TM", "Value": ["093000"]},
            "00080061": {"vr": "CS", "Value": ["CT"]}, "00081030": {"vr": "LO", "Value": [f"Study {uid}"]},
            "00201206": {"vr": "IS", "Value": [2]}, "00201208": {"vr": "IS", "Value": ["30"]}}
    if issuer is not None:
        item["00100021"] = {"vr": "LO", "Value": [issuer]}
    return item


@pytest.fixture
def ehr(tmp_path, monkeypatch):
    monkeypatch.setenv("PACS_AUTH", "pacs:s3cret")
    doc = registration()
    doc["ehrs"][0]["dicomweb"] = {"base_url": PACS, "basic_auth_env": "PACS_AUTH",
                                  "patient_identifiers": [{"system": MRN_SYSTEM, "issuer_of_patient_id": ISSUER}]}
    app = create_app(doc, secret_key="test-secret", store_path=tmp_path / "launches.sqlite3")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        ehr = MockedEhr(app.test_client(), mock)
        ehr.well_known(WELL_KNOWN)
        yield ehr


def _list_page(ehr: MockedEhr, search_status: int):
    ehr.mock.get(f"{ISS}/ImagingStudy", status=search_status, json={"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "not-supported"}]})
    ehr.mock.get(f"{ISS}/Patient/{PATIENT}", json={"resourceType": "Patient", "id": PATIENT, "identifier": [
        {"system": "urn:oid:9.9", "value": "OTHER"}, {"system": MRN_SYSTEM, "value": "M0041001"}]})
    ehr.mock.get(f"{PACS}/studies", content_type="application/dicom+json", json=[
        qido_study("1.2.1", date="20230101"), qido_study("1.2.2", date="20240101"),
        qido_study("1.2.3", patient_id="M0049999"), qido_study("1.2.4", issuer="1.2.840.99"),
        qido_study("1.2.5", issuer=None)])
    callback = ehr.authorized(good_token(need_patient_banner=False))
    return ehr.client.get(callback.headers["Location"])


@pytest.mark.parametrize("status", [404, 405, 501])
def test_the_list_comes_from_qido_rs_and_other_patients_are_dropped(ehr, status):
    page = _list_page(ehr, status)
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html[:400]
    assert re.findall(r'data-study-id="([^"]+)"', html) == ["1.2.2", "1.2.1"]  # newest first; 3 dropped
    assert "3 result(s) for another patient were ignored." in html
    assert "these studies come from the PACS at https://pacs.example.org (DICOMweb QIDO-RS)" in html
    (qido,) = ehr.calls_to("/dicom-web/studies")
    query = parse_qsl(urlsplit(qido.request.url).query)
    assert query[:2] == [("PatientID", "M0041001"), ("IssuerOfPatientID", ISSUER)]
    assert ("includefield", "00100021") in query and ("includefield", "00081030") in query
    assert qido.request.headers["Authorization"].startswith("Basic ")  # the PACS's own credentials
    assert "tok-good" not in str(qido.request.headers)


def test_another_search_failure_is_not_hidden_by_the_fallback(ehr):
    assert _list_page(ehr, 500).status_code == 502
    assert ehr.calls_to("/dicom-web/studies") == []
