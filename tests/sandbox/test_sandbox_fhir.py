"""FHIR API: token enforcement, scopes, compartment, content negotiation, strict search and paging."""

import pytest

import sandbox.clock


@pytest.fixture
def token(smart):
    return smart.ehr_token("pt-1003")["access_token"]


def test_missing_token_401(smart):
    response = smart.fhir("ImagingStudy?patient=pt-1003")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_unknown_token_401(smart):
    response = smart.fhir("Patient/pt-1003", "made-up-token")
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_token_expires_after_lifetime(smart, token, monkeypatch):
    real_now = sandbox.clock.now
    monkeypatch.setattr(sandbox.clock, "now", lambda: real_now() + 3601)
    response = smart.fhir("Patient/pt-1003", token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_read_patient(smart, token):
    response = smart.fhir("Patient/pt-1003", token)
    assert response.status_code == 200
    assert response.content_type == "application/fhir+json; charset=utf-8"
    patient = response.get_json()
    assert patient["id"] == "pt-1003" and patient["resourceType"] == "Patient"
    (mrn,) = patient["identifier"]
    assert mrn["type"]["coding"][0]["code"] == "MR" and mrn["system"].startswith("urn:oid:2.25.")
    assert patient["birthDate"] == "1949-07-21" and patient["gender"] == "female"


def test_other_patient_compartment_refused(smart, token):
    for path in ("Patient/pt-1001", "ImagingStudy/is-1001-ct", "ImagingStudy?patient=pt-1001"):
        response = smart.fhir(path, token)
        assert response.status_code == 403, path
        issue = response.get_json()["issue"][0]
        assert issue["code"] == "forbidden"


def test_unknown_study_404(smart, token):
    response = smart.fhir("ImagingStudy/is-9999-0001", token)
    assert response.status_code == 404
    assert response.get_json()["issue"][0]["code"] == "not-found"


def test_read_study_and_endpoint(smart, token):
    study = smart.fhir("ImagingStudy/is-1003-0001", token).get_json()
    assert study["subject"] == {"reference": "Patient/pt-1003"}
    assert study["endpoint"] == [{"reference": "Endpoint/sandbox-iid"}, {"reference": "Endpoint/sandbox-dicomweb"}]
    endpoint = smart.fhir("Endpoint/sandbox-iid", token).get_json()
    assert endpoint["connectionType"]["code"] == "ihe-iid"
    assert endpoint["address"] == "http://localhost:8800/IHEInvokeImageDisplay"
    assert smart.fhir("Endpoint/example-wadors", token).get_json()["connectionType"]["code"] == "dicom-wado-rs"


def test_endpoint_needs_a_scope(smart):
    body = smart.ehr_token("pt-1003", scope="launch patient/ImagingStudy.rs")
    response = smart.fhir("Endpoint/sandbox-iid", body["access_token"])
    assert response.status_code == 403
    assert response.get_json()["issue"][0]["diagnostics"].startswith("insufficient_scope")


@pytest.mark.parametrize("scope,read,search", [
    ("launch patient/ImagingStudy.r", 200, 403),
    ("launch patient/ImagingStudy.s", 403, 200),
    ("launch patient/ImagingStudy.read", 200, 200),
    ("launch patient/*.rs", 200, 200),
    ("launch user/ImagingStudy.rs", 200, 200),
    ("launch patient/Patient.read", 403, 403),
    ("launch patient/ImagingStudy.c", 403, 403),
    ("launch", 403, 403),
])
def test_scope_enforcement(smart, scope, read, search):
    access = smart.ehr_token("pt-1003", scope=scope)["access_token"]
    read_response = smart.fhir("ImagingStudy/is-1003-0001", access)
    search_response = smart.fhir("ImagingStudy?patient=pt-1003", access)
    assert (read_response.status_code, search_response.status_code) == (read, search)
    if search == 403:
        issue = search_response.get_json()["issue"][0]
        assert issue["code"] == "forbidden" and issue["diagnostics"].startswith("insufficient_scope")


def test_user_scope_reads_other_patients(smart):
    access = smart.ehr_token("pt-1003", scope="launch user/*.read")["access_token"]
    assert smart.fhir("ImagingStudy?patient=pt-1001", access).get_json()["total"] == 10


@pytest.mark.parametrize("accept", ["application/fhir+xml", "application/xml", "text/xml", "application/fhir+xml;q=1.0"])
def test_xml_accept_406(smart, token, accept):
    response = smart.fhir("ImagingStudy?patient=pt-1003", token, headers={"Accept": accept})
    assert response.status_code == 406
    assert response.content_type == "application/fhir+json; charset=utf-8"
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert smart.fhir("metadata", headers={"Accept": accept}).status_code == 406


def test_format_xml_406(smart, token):
    assert smart.fhir("ImagingStudy?patient=pt-1003&_format=xml", token).status_code == 406
    assert smart.fhir("Patient/pt-1003?_format=application/fhir%2Bxml", token).status_code == 406
    assert smart.fhir("Patient/pt-1003?_format=json", token).status_code == 200


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/fhir+json",
                                    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"])
def test_json_accepts(smart, token, accept):
    headers = {"Accept": accept} if accept else {}
    response = smart.fhir("Patient/pt-1003", token, headers=headers)
    assert response.status_code == 200
    assert response.content_type == "application/fhir+json; charset=utf-8"


@pytest.mark.parametrize("query,fragment", [
    ("patient=pt-1003&foo=bar", "foo"),
    ("patient=pt-1003&_count=abc", "_count"),
    ("patient=pt-1003&_count=-1", "_count"),
    ("patient=pt-1003&started=notadate", "started"),
    ("patient=pt-1003&started=ge2020-13-01", "started"),
    ("patient=pt-1003&_sort=bogus", "_sort"),
    ("patient=pt-1003&status=done", "status"),
    ("patient=pt-1003&modality=c t", "modality"),
    ("patient=pt-1003&patient:exact=pt-1003", "patient:exact"),
    ("patient=pt-1003&_getpagesoffset=x", "_getpagesoffset"),
    ("patient=pt-1003&subject=Patient/pt-1001", "different"),
    ("patient=Observation/1", "not a Patient reference"),
])
def test_bad_search_400(smart, token, query, fragment):
    response = smart.fhir("ImagingStudy?" + query, token)
    assert response.status_code == 400
    issue = response.get_json()["issue"][0]
    assert issue["code"] == "invalid" and fragment in issue["diagnostics"]


def test_search_without_patient_400(smart, token):
    response = smart.fhir("ImagingStudy?status=available", token)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["code"] == "required"


@pytest.mark.parametrize("patient_param", ["patient=pt-1003", "patient=Patient/pt-1003", "subject=Patient/pt-1003",
                                           "patient=http://localhost:8800/fhir/Patient/pt-1003"])
def test_patient_parameter_forms(smart, token, patient_param):
    assert smart.fhir(f"ImagingStudy?{patient_param}&_count=1", token).get_json()["total"] == 250


def test_paging_through_all_250_studies(smart, token):
    url = "ImagingStudy?patient=pt-1003&_sort=-started&_count=40"
    ids, started, pages = [], [], 0
    previous_link = None
    while url:
        bundle = smart.fhir(url, token).get_json()
        pages += 1
        assert bundle["type"] == "searchset" and bundle["total"] == 250
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert links["self"].startswith("http://localhost:8800/fhir/ImagingStudy?")
        if pages > 1:
            assert links["previous"] == previous_link
        for entry in bundle["entry"]:
            assert entry["search"] == {"mode": "match"}
            assert entry["fullUrl"] == f"http://localhost:8800/fhir/ImagingStudy/{entry['resource']['id']}"
            ids.append(entry["resource"]["id"])
            started.append(entry["resource"]["started"])
        previous_link = links["self"]
        next_url = links.get("next")
        url = next_url.removeprefix("http://localhost:8800/fhir/") if next_url else None
    assert pages == 7
    assert len(ids) == 250 and len(set(ids)) == 250
    from datetime import datetime
    stamps = [datetime.fromisoformat(s) for s in started]
    assert stamps == sorted(stamps, reverse=True)


def test_ascending_sort_and_count_limits(smart, token):
    bundle = smart.fhir("ImagingStudy?patient=pt-1003&_sort=started&_count=5000", token).get_json()
    assert len(bundle["entry"]) == 250
    assert "next" not in {link["relation"] for link in bundle["link"]}
    assert bundle["entry"][0]["resource"]["id"] == "is-1003-0001"
    default = smart.fhir("ImagingStudy?patient=pt-1003", token).get_json()
    assert len(default["entry"]) == 50


def test_started_modality_status_filters(smart):
    access = smart.ehr_token("pt-1005")["access_token"]
    def ids(query):
        bundle = smart.fhir("ImagingStudy?patient=pt-1005&" + query, access).get_json()
        return sorted(e["resource"]["id"] for e in bundle["entry"])
    assert ids("started=ge2020-01-01&started=lt2023") == ["is-1005-0006", "is-1005-0007"]
    assert ids("started=2016") == ["is-1005-0003"]
    assert ids("started=gt2023-06-30") == ["is-1005-0009"]
    assert ids("started=le2011-04-18T15:02:00-05:00") == ["is-1005-0010"]
    assert ids("modality=http://dicom.nema.org/resources/ontology/DCM|MG") == ["is-1005-0007"]
    assert ids("modality=CR,DX") == ["is-1005-0001", "is-1005-0005"]
    assert ids("modality=http://other.example/cs|MG") == []
    assert ids("status=cancelled,entered-in-error") == ["is-1005-0004", "is-1005-0005"]
    assert ids("status=registered") == ["is-1005-0009"]


def test_empty_history_bundle(smart):
    access = smart.ehr_token("pt-1004")["access_token"]
    bundle = smart.fhir("ImagingStudy?patient=pt-1004", access).get_json()
    assert bundle["total"] == 0 and bundle["entry"] == []


def test_unsupported_resource_and_method(smart, token):
    assert smart.fhir("Observation?patient=pt-1003", token).status_code == 404
    response = smart.client.post("/fhir/ImagingStudy", headers={"Authorization": f"Bearer {token}"}, json={})
    assert response.status_code == 405
