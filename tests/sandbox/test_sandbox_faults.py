"""Simulated faults bound to a launch, and server-wide latency."""

import time

from sandbox import create_app


def test_deny(smart):
    launch = smart.create_launch("pt-1001", faults={"deny": True})
    params = smart.authorize_params(smart.new_pkce(), launch=launch["launch"])
    response = smart.authorize(params)
    query = smart.query_of(response.headers["Location"])
    assert query["error"] == "access_denied"
    assert query["state"] == params["state"] and query["error_description"]
    assert "code" not in query


def test_narrow_scope(smart):
    body = smart.ehr_token("pt-1001", faults={"narrow_scope": True})
    assert body["scope"] == "launch openid fhirUser patient/Patient.rs"
    response = smart.fhir("ImagingStudy?patient=pt-1001", body["access_token"])
    assert response.status_code == 403
    issue = response.get_json()["issue"][0]
    assert issue["code"] == "forbidden" and issue["diagnostics"].startswith("insufficient_scope")
    assert smart.fhir("Patient/pt-1001", body["access_token"]).status_code == 200


def test_narrow_scope_v1_request(smart):
    body = smart.ehr_token("pt-1001", scope="launch patient/ImagingStudy.read", faults={"narrow_scope": True})
    assert body["scope"] == "launch patient/Patient.read"


def test_no_patient(smart):
    body = smart.ehr_token("pt-1001", faults={"no_patient": True})
    assert "patient" not in body
    response = smart.fhir("ImagingStudy?patient=pt-1001", body["access_token"])
    assert response.status_code == 403


def test_expired_token(smart):
    body = smart.ehr_token("pt-1001", faults={"expired_token": True})
    assert body["expires_in"] == 0
    response = smart.fhir("ImagingStudy?patient=pt-1001", body["access_token"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_expired_token_then_refresh_recovers(smart):
    body = smart.ehr_token("pt-1001", scope=smart.ehr_scope + " online_access", faults={"expired_token": True})
    assert body["expires_in"] == 0
    refreshed = smart.token({"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                             "client_id": "imaging-app"}).get_json()
    assert refreshed["expires_in"] == 3600
    assert smart.fhir("ImagingStudy?patient=pt-1001", refreshed["access_token"]).status_code == 200


def test_refresh_fails(smart):
    body = smart.ehr_token("pt-1001", scope=smart.ehr_scope + " offline_access", faults={"refresh_fails": True})
    response = smart.token({"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                            "client_id": "imaging-app"})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_delay_ms_only_for_that_launch(smart):
    slow = smart.ehr_token("pt-1001", faults={"delay_ms": 300})["access_token"]
    fast = smart.ehr_token("pt-1001")["access_token"]
    start = time.perf_counter()
    assert smart.fhir("ImagingStudy?patient=pt-1001", slow).status_code == 200
    slow_elapsed = time.perf_counter() - start
    start = time.perf_counter()
    assert smart.fhir("ImagingStudy?patient=pt-1001", fast).status_code == 200
    fast_elapsed = time.perf_counter() - start
    assert slow_elapsed >= 0.3 and fast_elapsed < 0.25


def test_server_latency_applies_to_every_endpoint():
    client = create_app({"LATENCY_MS": 150, "TESTING": True}).test_client()
    for path in ("/fhir/metadata", "/ehr/smart-style.json"):
        start = time.perf_counter()
        assert client.get(path).status_code == 200
        assert time.perf_counter() - start >= 0.15


def test_bad_fault_payloads(sandbox_client):
    for body in ({"patient": "pt-1001", "faults": {"explode": True}},
                 {"patient": "pt-1001", "faults": {"deny": "yes"}},
                 {"patient": "pt-1001", "faults": {"delay_ms": -5}},
                 {"patient": "pt-9999"},
                 {"patient": "pt-1001", "study": "is-1002-ct"},
                 {"study": "is-1001-ct"}):
        response = sandbox_client.post("/ehr/api/launches", json=body)
        assert response.status_code == 400, body
        assert response.get_json()["error"]
