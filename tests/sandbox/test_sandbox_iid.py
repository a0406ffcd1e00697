"""IHE RAD-106 Invoke Image Display: parameter validation and study selection."""

import pytest

from sandbox.records import PATIENT_ID_ISSUER_OID

CT_UID = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
MR_UID = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"


def iid(client, **params):
    return client.get("/IHEInvokeImageDisplay", query_string=params)


@pytest.mark.parametrize("params,status,message", [
    ({}, 400, "missing requestType"),
    ({"requestType": "SERIES"}, 400, "unsupported requestType"),
    ({"requestType": "STUDY"}, 400, "needs studyUID or accessionNumber"),
    ({"requestType": "STUDY", "studyUID": CT_UID, "accessionNumber": "A1001001"}, 400, "not both"),
    ({"requestType": "STUDY", "studyUID": "1.2.abc"}, 400, "is not a DICOM UID"),
    ({"requestType": "STUDY", "studyUID": "1.2.3.4.5"}, 404, "no study with Study Instance UID 1.2.3.4.5"),
    ({"requestType": "STUDY", "accessionNumber": "NOPE"}, 404, "no study with accession number NOPE"),
    ({"requestType": "STUDY", "studyUID": CT_UID, "diagnosticQuality": "yes"}, 400, "diagnosticQuality"),
    ({"requestType": "PATIENT"}, 400, "needs patientID"),
    ({"requestType": "PATIENT", "patientID": "pt-1001"}, 400, "assigning authority"),
    ({"requestType": "PATIENT", "patientID": "pt-1001^^^&1.2.3&ISO"}, 400, "unknown assigning authority"),
    ({"requestType": "PATIENT", "patientID": f"pt-1001^^^&{PATIENT_ID_ISSUER_OID}&ISO", "mostRecentResults": "x"},
     400, "mostRecentResults"),
    ({"requestType": "PATIENT", "patientID": f"pt-1001^^^&{PATIENT_ID_ISSUER_OID}&ISO", "mostRecentResults": "0"},
     400, "mostRecentResults"),
    ({"requestType": "PATIENT", "patientID": f"pt-1001^^^&{PATIENT_ID_ISSUER_OID}&ISO", "lowerDateTime": "soon"},
     400, "lowerDateTime"),
    ({"requestType": "PATIENT", "patientID": f"pt-9999^^^&{PATIENT_ID_ISSUER_OID}&ISO"}, 404, "no patient pt-9999"),
])
def test_validation_errors(sandbox_client, params, status, message):
    response = iid(sandbox_client, **params)
    assert response.status_code == status
    assert response.content_type.startswith("text/html")
    assert message in response.get_data(as_text=True)


def test_error_page_escapes_input(sandbox_client):
    response = iid(sandbox_client, requestType="<script>alert(1)</script>")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_frame_ancestors_allows_app_origin(sandbox_client):
    response = iid(sandbox_client, requestType="STUDY", studyUID=CT_UID)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' http://127.0.0.1:8000" in csp
    assert "script-src 'self'" in csp
    assert "X-Frame-Options" not in response.headers


def test_study_list_and_accession(sandbox_client):
    html = iid(sandbox_client, requestType="STUDY", studyUID=f"{CT_UID},{MR_UID}").get_data(as_text=True)
    assert html.count('class="study"') == 2 and "compare" in html
    by_accession = iid(sandbox_client, requestType="STUDY", accessionNumber="8000000000330109").get_data(as_text=True)
    assert "1.2.124.113532.10.122.1.203.20051130.122937.2950157" in by_accession


def test_patient_request_filters(sandbox_client):
    patient = f"pt-1001^^^&{PATIENT_ID_ISSUER_OID}&ISO"
    html = iid(sandbox_client, requestType="PATIENT", patientID=patient).get_data(as_text=True)
    assert html.count('class="study"') == 10
    recent = iid(sandbox_client, requestType="PATIENT", patientID=patient, mostRecentResults="2").get_data(as_text=True)
    assert recent.count('class="study"') == 2
    assert "1.2.840.114340.3.8251017118051.1.20160503.120850.2171" in recent  # 2016 cine is the newest
    us_only = iid(sandbox_client, requestType="PATIENT", patientID=patient, modalitiesInStudy="US").get_data(as_text=True)
    assert us_only.count('class="study"') == 3
    dated = iid(sandbox_client, requestType="PATIENT", patientID=patient, lowerDateTime="2005-01-01T00:00:00",
                upperDateTime="2012-01-01T00:00:00").get_data(as_text=True)
    assert dated.count('class="study"') == 2


def test_patient_by_mrn_and_hidden_statuses(sandbox_client):
    html = iid(sandbox_client, requestType="PATIENT", patientID=f"M0041005^^^&{PATIENT_ID_ISSUER_OID}&ISO").get_data(as_text=True)
    assert html.count('class="study"') == 6  # 10 minus cancelled, entered-in-error and 2 without UID
