"""RFC 9207: ``iss`` on every authorization response, advertised in discovery; opt-out and faults."""

import pytest

from sandbox import create_app
from sandbox_auth_helpers import ISSUER, authorize_code

WRONG_ISSUER = "https://wrong-issuer.example.net"


def _location_query(smart, response):
    assert response.status_code == 302, response.get_data(as_text=True)
    return smart.query_of(response.headers["Location"])


def test_success_redirect_carries_iss(smart):
    code, _, query = authorize_code(smart)
    assert query["iss"] == ISSUER
    assert set(query) == {"code", "state", "iss"}


def test_discovery_advertises_iss_and_the_same_issuer(smart):
    config = smart.client.get("/fhir/.well-known/smart-configuration").get_json()
    assert config["authorization_response_iss_parameter_supported"] is True
    assert config["issuer"] == ISSUER
    oidc = smart.client.get("/.well-known/openid-configuration").get_json()
    assert oidc["authorization_response_iss_parameter_supported"] is True
    assert oidc["issuer"] == ISSUER


@pytest.mark.parametrize("case", ["missing_aud", "unknown_launch", "bad_scope", "plain_pkce", "deny"])
def test_error_redirects_carry_iss(smart, case):
    pkce = smart.new_pkce()
    if case == "deny":
        launch = smart.create_launch(faults={"deny": True})["launch"]
    elif case == "unknown_launch":
        launch = "not-a-launch"
    else:
        launch = smart.create_launch()["launch"]
    overrides = {
        "missing_aud": {"aud": None},
        "bad_scope": {"scope": "launch patient/ImagingStudy.zz"},
        "plain_pkce": {"code_challenge": pkce.code_verifier, "code_challenge_method": "plain"},
    }.get(case, {})
    params = smart.authorize_params(pkce, launch=launch, **overrides)
    query = _location_query(smart, smart.authorize(params))
    expected = {"deny": "access_denied", "bad_scope": "invalid_scope"}.get(case, "invalid_request")
    assert query["error"] == expected
    assert query["state"] == params["state"]
    assert query["iss"] == ISSUER


def test_standalone_picker_redirects_carry_iss(smart):
    pkce = smart.new_pkce()
    params = smart.authorize_params(pkce, scope="launch/patient patient/ImagingStudy.rs")
    html = smart.authorize(params).get_data(as_text=True)
    pending = html.split('name="pending" value="')[1].split('"')[0]
    query = _location_query(smart, smart.client.post("/oauth2/authorize", data={"pending": pending, "patient": "pt-1002"}))
    assert query["iss"] == ISSUER and "code" in query
    html = smart.authorize(smart.authorize_params(pkce, scope="launch/patient patient/ImagingStudy.rs")).get_data(as_text=True)
    pending = html.split('name="pending" value="')[1].split('"')[0]
    query = _location_query(smart, smart.client.post("/oauth2/authorize", data={"pending": pending, "deny": "1"}))
    assert query["error"] == "access_denied" and query["iss"] == ISSUER


def test_error_page_without_redirect_has_no_location(smart):
    params = smart.authorize_params(smart.new_pkce(), client_id="evil-app")
    response = smart.authorize(params)
    assert response.status_code == 400 and "Location" not in response.headers


@pytest.mark.parametrize("setting", [{"AUTHORIZATION_RESPONSE_ISS": False}, "env"])
def test_opt_out_neither_sends_nor_advertises(setting, monkeypatch):
    from conftest import SmartFlow

    if setting == "env":
        monkeypatch.setenv("SANDBOX_AUTHORIZATION_RESPONSE_ISS", "false")
        setting = {}
    smart = SmartFlow(create_app({"TESTING": True, **setting}).test_client())
    _, _, query = authorize_code(smart)
    assert "iss" not in query and "code" in query
    params = smart.authorize_params(smart.new_pkce(), launch="not-a-launch")
    error = _location_query(smart, smart.authorize(params))
    assert error["error"] == "invalid_request" and "iss" not in error
    config = smart.client.get("/fhir/.well-known/smart-configuration").get_json()
    assert "authorization_response_iss_parameter_supported" not in config
    oidc = smart.client.get("/.well-known/openid-configuration").get_json()
    assert "authorization_response_iss_parameter_supported" not in oidc


def test_bad_boolean_setting_is_refused():
    with pytest.raises(ValueError, match="AUTHORIZATION_RESPONSE_ISS"):
        create_app({"AUTHORIZATION_RESPONSE_ISS": "sometimes"})


def test_omit_iss_fault_drops_iss_but_discovery_still_advertises(smart):
    _, _, query = authorize_code(smart, faults={"omit_iss": True})
    assert "iss" not in query and "code" in query
    config = smart.client.get("/fhir/.well-known/smart-configuration").get_json()
    assert config["authorization_response_iss_parameter_supported"] is True


def test_omit_iss_fault_applies_to_error_redirects_too(smart):
    launch = smart.create_launch(faults={"omit_iss": True, "deny": True})
    query = _location_query(smart, smart.authorize(smart.authorize_params(smart.new_pkce(), launch=launch["launch"])))
    assert query["error"] == "access_denied" and "iss" not in query


def test_wrong_iss_fault(smart):
    _, _, query = authorize_code(smart, faults={"wrong_iss": True})
    assert query["iss"] == WRONG_ISSUER
