"""Authorization server: EHR and standalone launches, token, refresh, and every strict check."""

import pytest

import sandbox.clock


def test_ehr_launch_full_flow_with_study_context(smart):
    launch = smart.create_launch("pt-1001", study="is-1001-nm-bone", need_patient_banner=False)
    assert launch["iss"] == smart.fhir_base
    assert smart.query_of(launch["launch_url"]) == {"iss": smart.fhir_base, "launch": launch["launch"]}
    pkce = smart.new_pkce()
    params = smart.authorize_params(pkce, launch=launch["launch"])
    response = smart.authorize(params)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(smart.redirect_uri + "?")
    code = smart.code_from(response, params["state"])
    token = smart.exchange(code, pkce)
    assert token.status_code == 200
    assert token.headers["Cache-Control"] == "no-store"
    body = token.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == smart.ehr_scope
    assert body["patient"] == "pt-1001"
    assert body["need_patient_banner"] is False
    assert body["fhirContext"] == [{"reference": "ImagingStudy/is-1001-nm-bone"}]
    assert body["smart_style_url"] == "http://localhost:8800/ehr/smart-style.json"
    assert "refresh_token" not in body  # neither offline_access nor online_access asked
    assert smart.fhir("Patient/pt-1001", body["access_token"]).status_code == 200


def test_no_fhir_context_without_preselected_study(smart):
    body = smart.ehr_token("pt-1002")
    assert body["patient"] == "pt-1002"
    assert "fhirContext" not in body
    assert body["need_patient_banner"] is True


def test_standalone_launch_with_patient_picker(smart):
    pkce = smart.new_pkce()
    params = smart.authorize_params(pkce, scope="launch/patient openid fhirUser patient/ImagingStudy.read")
    page = smart.authorize(params)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Choose a patient" in html and "Margaret Ann Whitfield" in html
    pending = html.split('name="pending" value="')[1].split('"')[0]
    response = smart.client.post("/oauth2/authorize", data={"pending": pending, "patient": "pt-1003"})
    code = smart.code_from(response, params["state"])
    body = smart.exchange(code, pkce).get_json()
    assert body["patient"] == "pt-1003"
    assert body["scope"] == "launch/patient openid fhirUser patient/ImagingStudy.read"
    # the pending request is single use
    again = smart.client.post("/oauth2/authorize", data={"pending": pending, "patient": "pt-1003"})
    assert again.status_code == 400 and "Location" not in again.headers


def test_standalone_picker_cancel_is_access_denied(smart):
    pkce = smart.new_pkce()
    params = smart.authorize_params(pkce, scope="launch/patient patient/ImagingStudy.rs")
    html = smart.authorize(params).get_data(as_text=True)
    pending = html.split('name="pending" value="')[1].split('"')[0]
    response = smart.client.post("/oauth2/authorize", data={"pending": pending, "deny": "1"})
    query = smart.query_of(response.headers["Location"])
    assert query["error"] == "access_denied" and query["state"] == params["state"]


def test_confidential_client_basic_auth(smart):
    launch = smart.create_launch("pt-1001")
    pkce = smart.new_pkce()
    params = smart.authorize_params(pkce, launch=launch["launch"], client_id=smart.confidential_client)
    code = smart.code_from(smart.authorize(params))
    wrong = smart.exchange(code, pkce, basic=(smart.confidential_client, "wrong-secret"))
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"
    ok = smart.exchange(code, pkce, basic=(smart.confidential_client, smart.confidential_secret))
    assert ok.status_code == 200 and ok.get_json()["patient"] == "pt-1001"


def test_confidential_client_without_secret_is_refused(smart):
    launch = smart.create_launch("pt-1001")
    pkce = smart.new_pkce()
    params = smart.authorize_params(pkce, launch=launch["launch"], client_id=smart.confidential_client)
    code = smart.code_from(smart.authorize(params))
    response = smart.exchange(code, pkce, client_id=smart.confidential_client)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


def test_refresh_rotates_and_refuses_reuse(smart):
    body = smart.ehr_token("pt-1001", scope=smart.ehr_scope + " offline_access")
    first_refresh = body["refresh_token"]
    refreshed = smart.token({"grant_type": "refresh_token", "refresh_token": first_refresh, "client_id": "imaging-app"})
    assert refreshed.status_code == 200
    new = refreshed.get_json()
    assert new["refresh_token"] != first_refresh and new["access_token"] != body["access_token"]
    assert new["patient"] == "pt-1001" and new["scope"] == body["scope"]
    assert smart.fhir("ImagingStudy?patient=pt-1001", new["access_token"]).status_code == 200
    reused = smart.token({"grant_type": "refresh_token", "refresh_token": first_refresh, "client_id": "imaging-app"})
    assert reused.status_code == 400 and reused.get_json()["error"] == "invalid_grant"
    again = smart.token({"grant_type": "refresh_token", "refresh_token": new["refresh_token"], "client_id": "imaging-app"})
    assert again.status_code == 200


def test_online_access_also_gets_refresh_token(smart):
    assert "refresh_token" in smart.ehr_token("pt-1001", scope=smart.ehr_scope + " online_access")


# ----------------------------------------------------------------- strict checks, no redirect
def test_unknown_client_gets_error_page_not_redirect(smart):
    launch = smart.create_launch()
    response = smart.authorize(smart.authorize_params(smart.new_pkce(), launch=launch["launch"], client_id="evil-app"))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "invalid_client" in response.get_data(as_text=True)


@pytest.mark.parametrize("redirect_uri", [
    "http://127.0.0.1:8000/callback/",
    "http://127.0.0.1:8000/callback?x=1",
    "https://attacker.example.net/callback",
    None,
])
def test_unregistered_redirect_uri_gets_error_page(smart, redirect_uri):
    launch = smart.create_launch()
    params = smart.authorize_params(smart.new_pkce(), launch=launch["launch"], redirect_uri=redirect_uri)
    assert params.get("redirect_uri") == redirect_uri
    response = smart.authorize(params)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "invalid_request" in response.get_data(as_text=True)


# ----------------------------------------------------------------- strict checks, redirect with error
def _error_redirect(smart, params):
    response = smart.authorize(params)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(smart.redirect_uri + "?")
    query = smart.query_of(location)
    assert query["state"] == params["state"]
    assert "code" not in query
    assert query["error_description"]
    return query["error"]


@pytest.mark.parametrize("aud", [None, "http://localhost:8800/fhir/", "http://localhost:8800", "HTTP://localhost:8800/fhir"])
def test_wrong_or_missing_aud(smart, aud):
    launch = smart.create_launch()
    params = smart.authorize_params(smart.new_pkce(), launch=launch["launch"], aud=aud)
    assert params.get("aud") == aud
    assert _error_redirect(smart, params) == "invalid_request"


def test_missing_launch(smart):
    params = smart.authorize_params(smart.new_pkce())
    assert _error_redirect(smart, params) == "invalid_request"


def test_unknown_launch(smart):
    params = smart.authorize_params(smart.new_pkce(), launch="not-a-launch")
    assert _error_redirect(smart, params) == "invalid_request"


def test_reused_launch(smart):
    launch = smart.create_launch()
    first = smart.authorize_params(smart.new_pkce(), launch=launch["launch"])
    smart.code_from(smart.authorize(first))
    second = smart.authorize_params(smart.new_pkce(), launch=launch["launch"])
    assert _error_redirect(smart, second) == "invalid_request"


def test_expired_launch(smart, monkeypatch):
    launch = smart.create_launch()
    real_now = sandbox.clock.now
    monkeypatch.setattr(sandbox.clock, "now", lambda: real_now() + 301)
    params = smart.authorize_params(smart.new_pkce(), launch=launch["launch"])
    assert _error_redirect(smart, params) == "invalid_request"


def test_launch_parameter_without_launch_scope(smart):
    launch = smart.create_launch()
    params = smart.authorize_params(smart.new_pkce(), scope="patient/ImagingStudy.rs", launch=launch["launch"])
    assert _error_redirect(smart, params) == "invalid_request"


@pytest.mark.parametrize("scope", [
    "launch patient/ImagingStudy.sr",
    "launch patient/ImagingStudy.x",
    "launch patient/imagingstudy.rs",
    "launch system/ImagingStudy.rs",
    "launch patient/ImagingStudy.read?category=x",
    "launch profile-everything",
    "launch patient/ImagingStudy",
])
def test_malformed_scope_is_invalid_scope(smart, scope):
    launch = smart.create_launch()
    params = smart.authorize_params(smart.new_pkce(), scope=scope, launch=launch["launch"])
    assert _error_redirect(smart, params) == "invalid_scope"


def test_malformed_scope_does_not_burn_the_launch(smart):
    launch = smart.create_launch()
    bad = smart.authorize_params(smart.new_pkce(), scope="launch patient/X.zz", launch=launch["launch"])
    assert _error_redirect(smart, bad) == "invalid_scope"
    good = smart.authorize_params(smart.new_pkce(), launch=launch["launch"])
    smart.code_from(smart.authorize(good))


@pytest.mark.parametrize("scope", [
    "launch patient/ImagingStudy.rs", "launch patient/ImagingStudy.read", "launch patient/*.read",
    "launch patient/*.rs", "launch patient/*.*", "launch patient/ImagingStudy.cruds", "launch user/ImagingStudy.rs",
    "launch user/*.read", "launch patient/ImagingStudy.rs?status=available",
])
def test_valid_scopes_accepted(smart, scope):
    launch = smart.create_launch()
    params = smart.authorize_params(smart.new_pkce(), scope=scope, launch=launch["launch"])
    smart.code_from(smart.authorize(params))


def test_plain_pkce_refused(smart):
    launch = smart.create_launch()
    pkce = smart.new_pkce()
    params = smart.authorize_params(pkce, launch=launch["launch"], code_challenge=pkce.code_verifier,
                                    code_challenge_method="plain")
    assert _error_redirect(smart, params) == "invalid_request"


def test_missing_pkce_refused(smart):
    launch = smart.create_launch()
    params = smart.authorize_params(smart.new_pkce(), launch=launch["launch"], code_challenge=None,
                                    code_challenge_method=None)
    assert _error_redirect(smart, params) == "invalid_request"


def test_pkce_without_method_refused(smart):
    launch = smart.create_launch()
    params = smart.authorize_params(smart.new_pkce(), launch=launch["launch"], code_challenge_method=None)
    assert _error_redirect(smart, params) == "invalid_request"


# ----------------------------------------------------------------- token endpoint checks
def _code(smart, pkce):
    launch = smart.create_launch()
    return smart.code_from(smart.authorize(smart.authorize_params(pkce, launch=launch["launch"])))


def test_wrong_code_verifier(smart):
    pkce = smart.new_pkce()
    code = _code(smart, pkce)
    other = smart.new_pkce()
    response = smart.exchange(code, other)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_missing_code_verifier(smart):
    pkce = smart.new_pkce()
    code = _code(smart, pkce)
    response = smart.token({"grant_type": "authorization_code", "code": code, "redirect_uri": smart.redirect_uri,
                            "client_id": "imaging-app"})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_code_reuse(smart):
    pkce = smart.new_pkce()
    code = _code(smart, pkce)
    assert smart.exchange(code, pkce).status_code == 200
    again = smart.exchange(code, pkce)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"


def test_code_too_old(smart, monkeypatch):
    pkce = smart.new_pkce()
    code = _code(smart, pkce)
    real_now = sandbox.clock.now
    monkeypatch.setattr(sandbox.clock, "now", lambda: real_now() + 61)
    response = smart.exchange(code, pkce)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_code_lifetime_config():
    from sandbox import create_app

    app = create_app({"CODE_LIFETIME": 5, "TESTING": True})
    assert app.extensions["sandbox"].oauth.store.code_lifetime == 5


def test_code_bound_to_redirect_uri(smart):
    pkce = smart.new_pkce()
    code = _code(smart, pkce)
    response = smart.token({"grant_type": "authorization_code", "code": code, "client_id": "imaging-app",
                            "redirect_uri": "http://127.0.0.1:8000/other", "code_verifier": pkce.code_verifier})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_unknown_grant_type(smart):
    response = smart.token({"grant_type": "password", "username": "x", "password": "y", "client_id": "imaging-app"})
    assert response.status_code == 400 and response.get_json()["error"] == "unsupported_grant_type"
