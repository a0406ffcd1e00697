"""Extra launch context (encounter, fhirContext, intent, tenant), Encounter reads, short-lived tokens."""

import pytest

import sandbox.clock
from conftest import SmartFlow
from sandbox import create_app
from sandbox_auth_helpers import token_for

ENCOUNTER_SCOPE = "launch patient/ImagingStudy.rs patient/Patient.rs patient/Encounter.r offline_access"


def test_all_extra_context_in_token_response(smart):
    body = token_for(smart, study="is-1001-ct", encounter=True,
                     fhir_context=["DiagnosticReport/dr-77", {"reference": "ServiceRequest/sr-9", "role": "http://example.org/order"},
                                   "ImagingStudy/is-1001-mr", "ImagingStudy/is-1001-ct"],
                     intent="compare-prior", tenant="hospital-a")
    assert body["encounter"] == "enc-pt-1001"
    assert body["fhirContext"] == [
        {"reference": "ImagingStudy/is-1001-ct"},
        {"reference": "DiagnosticReport/dr-77"},
        {"reference": "ServiceRequest/sr-9", "role": "http://example.org/order"},
        {"reference": "ImagingStudy/is-1001-mr"},
    ]
    assert body["intent"] == "compare-prior"
    assert body["tenant"] == "hospital-a"
    assert body["patient"] == "pt-1001"


def test_no_extra_context_unless_launched_with_it(smart):
    body = token_for(smart)
    assert not {"encounter", "fhirContext", "intent", "tenant"} & set(body)


def test_encounter_by_id_and_fhir_context_alone(smart):
    body = token_for(smart, patient="pt-1002", encounter="enc-pt-1002", fhir_context=["Encounter/enc-pt-1002"])
    assert body["encounter"] == "enc-pt-1002"
    assert body["fhirContext"] == [{"reference": "Encounter/enc-pt-1002"}]


def test_context_survives_refresh(smart):
    body = token_for(smart, scope=ENCOUNTER_SCOPE, encounter=True, tenant="t-1", intent="x")
    refreshed = smart.token({"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                             "client_id": "imaging-app"}).get_json()
    assert (refreshed["encounter"], refreshed["tenant"], refreshed["intent"]) == ("enc-pt-1001", "t-1", "x")


@pytest.mark.parametrize("option,message", [
    ({"encounter": "enc-pt-1002"}, "encounter must be true or 'enc-pt-1001'"),
    ({"encounter": "nope"}, "encounter must be"),
    ({"fhir_context": ["ImagingStudy/is-1002-ct"]}, "is not a study of patient 'pt-1001'"),
    ({"fhir_context": ["Encounter/enc-pt-1003"]}, "is not an encounter of patient"),
    ({"fhir_context": ["Observation/o-1"]}, "fhir_context reference must be one of"),
    ({"fhir_context": ["ImagingStudy/"]}, "fhir_context reference must be one of"),
    ({"fhir_context": "ImagingStudy/is-1001-ct"}, "fhir_context must be a list"),
    ({"fhir_context": [{"reference": "ServiceRequest/s", "extra": 1}]}, "fhir_context items must be"),
    ({"tenant": "has space"}, "tenant must be a string"),
    ({"tenant": ""}, "tenant must be a string"),
    ({"intent": 5}, "intent must be a string"),
    ({"access_token_lifetime": 0}, "access_token_lifetime must be an integer 1..86400"),
    ({"access_token_lifetime": True}, "access_token_lifetime must be"),
])
def test_bad_launch_options_refused(smart, option, message):
    response = smart.client.post("/ehr/api/launches", json={"patient": "pt-1001", **option})
    assert response.status_code == 400
    assert message in response.get_json()["error"]


# ----------------------------------------------------------------- Encounter reads
def test_encounter_readable(smart):
    body = token_for(smart, scope=ENCOUNTER_SCOPE, encounter=True)
    response = smart.fhir("Encounter/" + body["encounter"], body["access_token"])
    assert response.status_code == 200
    resource = response.get_json()
    assert resource["resourceType"] == "Encounter" and resource["id"] == "enc-pt-1001"
    assert resource["subject"] == {"reference": "Patient/pt-1001"}
    assert resource["status"] == "in-progress"


def test_encounter_of_another_patient_forbidden(smart):
    body = token_for(smart, scope=ENCOUNTER_SCOPE)
    response = smart.fhir("Encounter/enc-pt-1002", body["access_token"])
    assert response.status_code == 403 and response.get_json()["issue"][0]["code"] == "forbidden"


def test_encounter_needs_scope(smart):
    body = token_for(smart, encounter=True)
    response = smart.fhir("Encounter/enc-pt-1001", body["access_token"])
    assert response.status_code == 403
    assert response.get_json()["issue"][0]["diagnostics"].startswith("insufficient_scope")


def test_unknown_encounter(smart):
    body = token_for(smart, scope="launch user/Encounter.rs")
    assert smart.fhir("Encounter/enc-pt-9999", body["access_token"]).status_code == 404
    assert smart.fhir("Encounter/visit-1", body["access_token"]).status_code == 404
    assert smart.fhir("Encounter/enc-pt-1003", body["access_token"]).status_code == 200  # user/ scope: any patient


# ----------------------------------------------------------------- short-lived tokens
def _shift(monkeypatch, seconds):
    real_now = sandbox.clock.now
    monkeypatch.setattr(sandbox.clock, "now", lambda: real_now() + seconds)
    return real_now


def _expires_after_six_seconds(smart, body, monkeypatch):
    assert body["expires_in"] == 6
    real_now = _shift(monkeypatch, 5.5)
    assert smart.fhir("Patient/pt-1001", body["access_token"]).status_code == 200
    monkeypatch.setattr(sandbox.clock, "now", lambda: real_now() + 6)
    response = smart.fhir("Patient/pt-1001", body["access_token"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    return real_now


def test_six_second_server_lifetime(monkeypatch):
    smart = SmartFlow(create_app({"TESTING": True, "ACCESS_TOKEN_LIFETIME": 6}).test_client())
    body = token_for(smart, scope=ENCOUNTER_SCOPE)
    real_now = _expires_after_six_seconds(smart, body, monkeypatch)
    refreshed = smart.token({"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                             "client_id": "imaging-app"}).get_json()
    assert refreshed["expires_in"] == 6
    monkeypatch.setattr(sandbox.clock, "now", lambda: real_now() + 11.5)
    assert smart.fhir("Patient/pt-1001", refreshed["access_token"]).status_code == 200
    monkeypatch.setattr(sandbox.clock, "now", lambda: real_now() + 12)
    assert smart.fhir("Patient/pt-1001", refreshed["access_token"]).status_code == 401


def test_six_second_lifetime_from_environment(monkeypatch):
    monkeypatch.setenv("SANDBOX_ACCESS_TOKEN_LIFETIME", "6")
    smart = SmartFlow(create_app({"TESTING": True}).test_client())
    _expires_after_six_seconds(smart, token_for(smart), monkeypatch)


def test_six_second_launch_option(smart, monkeypatch):
    body = token_for(smart, access_token_lifetime=6)
    _expires_after_six_seconds(smart, body, monkeypatch)
    assert token_for(smart)["expires_in"] == 3600  # only that launch


def test_six_second_client_lifetime(monkeypatch):
    entry = {"client_id": "imaging-app", "client_name": "short", "token_endpoint_auth_method": "none",
             "redirect_uris": ["{app_origin}/callback"], "grant_types": ["authorization_code", "refresh_token"],
             "response_types": ["code"], "access_token_lifetime": 6}
    smart = SmartFlow(create_app({"TESTING": True, "CLIENTS": [entry]}).test_client())
    _expires_after_six_seconds(smart, token_for(smart), monkeypatch)
