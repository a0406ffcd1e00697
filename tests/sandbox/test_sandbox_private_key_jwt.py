"""Asymmetric client authentication (private_key_jwt): SMART App Launch 2.2, RFC 7523 §2.2 / §3."""

import base64
import json
import time

import pytest
from flask import Flask, Response

import sandbox.clock
from conftest import SmartFlow
from sandbox import create_app
from sandbox_auth_helpers import (ASSERTION_TYPE, ASYMMETRIC_CLIENT, ASYMMETRIC_URI_CLIENT, TOKEN_ENDPOINT, assertion,
                                  assertion_form, authorize_code, ec_key, public_jwks, rsa_key, segments)
from tests.support import live_server

SCOPE = "launch openid fhirUser offline_access patient/ImagingStudy.rs patient/Patient.rs"


@pytest.fixture(scope="module")
def keys():
    return {"rsa": rsa_key("rsa-1"), "ec": ec_key("ec-1"), "other_rsa": rsa_key("rsa-1"), "other_ec": ec_key("ec-1")}


@pytest.fixture
def asym(keys):
    jwks = public_jwks(keys["rsa"], keys["ec"])
    return SmartFlow(create_app({"TESTING": True, "CLIENT_JWKS": {ASYMMETRIC_CLIENT: jwks}}).test_client())


def _code(smart, client_id=ASYMMETRIC_CLIENT):
    code, pkce, _ = authorize_code(smart, client_id=client_id, scope=SCOPE)
    return code, pkce


def _exchange(smart, signed, client_id=ASYMMETRIC_CLIENT, form_client_id=None):
    """Authorize as *client_id*, then exchange the code authenticating with *signed* (and ``client_id`` if given)."""
    code, pkce = _code(smart, client_id)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": smart.redirect_uri,
            "code_verifier": pkce.code_verifier, **assertion_form(signed)}
    if form_client_id is not None:
        data["client_id"] = form_client_id
    return smart.token(data)


def _refused(response, description):
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["error"] == "invalid_client"
    assert description in body["error_description"]


@pytest.mark.parametrize("kind,alg", [("rsa", "RS384"), ("ec", "ES384")])
def test_accepted_for_code_and_refresh_grants(asym, keys, kind, alg):
    response = _exchange(asym, assertion(keys[kind], alg=alg))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["patient"] == "pt-1001"
    assert asym.fhir("ImagingStudy?patient=pt-1001", body["access_token"]).status_code == 200
    assert segments(body["id_token"])[1]["aud"] == ASYMMETRIC_CLIENT
    refreshed = asym.token({"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                            **assertion_form(assertion(keys[kind], alg=alg))})
    assert refreshed.status_code == 200, refreshed.get_json()
    assert refreshed.get_json()["access_token"] != body["access_token"]


def test_matching_client_id_form_field_is_fine(asym, keys):
    assert _exchange(asym, assertion(keys["rsa"]), form_client_id=ASYMMETRIC_CLIENT).status_code == 200


def test_refresh_without_assertion_is_refused(asym, keys):
    body = _exchange(asym, assertion(keys["rsa"])).get_json()
    response = asym.token({"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                           "client_id": ASYMMETRIC_CLIENT})
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


def test_code_exchange_without_assertion_is_refused(asym):
    code, pkce = _code(asym)
    response = asym.exchange(code, pkce, client_id=ASYMMETRIC_CLIENT)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("kind,alg", [("other_rsa", "RS384"), ("other_ec", "ES384")])
def test_wrong_key_same_kid(asym, keys, kind, alg):
    _refused(_exchange(asym, assertion(keys[kind], alg=alg)), "signature does not verify")


def test_unknown_kid(asym, keys):
    _refused(_exchange(asym, assertion(keys["rsa"], kid="rsa-2")), "no key with kid 'rsa-2'")


def test_kid_of_a_key_of_the_other_type(asym, keys):
    _refused(_exchange(asym, assertion(keys["ec"], alg="ES384", kid="rsa-1")), "signature does not verify")


def test_reused_jti(asym, keys):
    signed = assertion(keys["rsa"], jti="jti-once")
    assert _exchange(asym, signed).status_code == 200
    _refused(_exchange(asym, signed), "jti has already been used")
    _refused(_exchange(asym, assertion(keys["rsa"], jti="jti-once")), "jti has already been used")


def test_expired_assertion(asym, keys):
    _refused(_exchange(asym, assertion(keys["rsa"], exp=int(time.time()) - 5)), "has expired")


def test_assertion_expires_between_signing_and_use(asym, keys, monkeypatch):
    code, pkce = _code(asym)
    signed = assertion(keys["rsa"], exp=int(time.time()) + 30)
    real_now = sandbox.clock.now
    monkeypatch.setattr(sandbox.clock, "now", lambda: real_now() + 31)  # the code (60 s) is still valid
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": asym.redirect_uri,
            "code_verifier": pkce.code_verifier, **assertion_form(signed)}
    _refused(asym.token(data), "has expired")


# 305, not 301: exp is whole seconds (int(time.time()) truncates up to 1 s) and a loaded machine adds delay
@pytest.mark.parametrize("seconds,accepted", [(240, True), (299, True), (305, False), (3600, False)])
def test_exp_at_most_five_minutes_ahead(asym, keys, seconds, accepted):
    response = _exchange(asym, assertion(keys["rsa"], exp=int(time.time()) + seconds))
    if accepted:
        assert response.status_code == 200, response.get_json()
    else:
        _refused(response, "more than 5 minutes in the future")


def test_missing_exp(asym, keys):
    _refused(_exchange(asym, assertion(keys["rsa"], exp=None)), "numeric 'exp'")


def test_missing_jti(asym, keys):
    _refused(_exchange(asym, assertion(keys["rsa"], jti=None)), "needs a 'jti'")


@pytest.mark.parametrize("aud", ["http://localhost:8800/oauth2/authorize", "http://localhost:8800",
                                 "http://localhost:8800/oauth2/token/", "http://localhost:8800/fhir"])
def test_aud_must_be_the_token_endpoint(asym, keys, aud):
    _refused(_exchange(asym, assertion(keys["rsa"], aud=aud)), "aud must be the token endpoint")


def test_aud_array_containing_the_token_endpoint(asym, keys):
    response = _exchange(asym, assertion(keys["rsa"], aud=[TOKEN_ENDPOINT, "https://other.example"]))
    assert response.status_code == 200


@pytest.mark.parametrize("claims", [{"iss": "imaging-app"}, {"sub": "imaging-app"}, {"iss": None}])
def test_iss_and_sub_must_be_the_client(asym, keys, claims):
    _refused(_exchange(asym, assertion(keys["rsa"], **claims)), "iss and sub must both be the client_id")


def test_form_client_id_must_match(asym, keys):
    _refused(_exchange(asym, assertion(keys["rsa"]), form_client_id="imaging-app"), "client_id does not match")


def test_client_not_registered_for_private_key_jwt(asym, keys):
    signed = assertion(keys["rsa"], client_id="imaging-app-confidential")
    _refused(_exchange(asym, signed, client_id="imaging-app-confidential"), "not registered for private_key_jwt")


def test_future_nbf(asym, keys):
    _refused(_exchange(asym, assertion(keys["rsa"], nbf=int(time.time()) + 60)), "not valid yet")


@pytest.mark.parametrize("alg", ["RS256", "PS384", "RS512"])
def test_other_algorithms_refused(asym, keys, alg):
    _refused(_exchange(asym, assertion(keys["rsa"], alg=alg)), "alg must be one of RS384, ES384")


def test_hs256_and_none_refused(asym, keys):
    from joserfc import jwt
    from joserfc.jwk import OctKey

    claims = {"iss": ASYMMETRIC_CLIENT, "sub": ASYMMETRIC_CLIENT, "aud": TOKEN_ENDPOINT, "exp": int(time.time()) + 60,
              "jti": "hs"}
    hs = jwt.encode({"alg": "HS256", "kid": "rsa-1"}, claims, OctKey.generate_key(256), algorithms=["HS256"])
    _refused(_exchange(asym, hs), "alg must be one of")
    payload = hs.split(".")[1]
    none_header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": "rsa-1"}).encode()).rstrip(b"=").decode()
    _refused(_exchange(asym, f"{none_header}.{payload}."), "alg must be one of")


def test_wrong_assertion_type(asym, keys):
    code, pkce = _code(asym)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": asym.redirect_uri,
            "code_verifier": pkce.code_verifier, "client_assertion_type": "urn:example:saml",
            "client_assertion": assertion(keys["rsa"])}
    _refused(asym.token(data), "client_assertion_type must be " + ASSERTION_TYPE)


def test_garbage_assertion(asym):
    _refused(_exchange(asym, "not.a.jwt"), "client_assertion is not a valid JWT")


def test_default_registration_has_no_keys(keys):
    smart = SmartFlow(create_app({"TESTING": True}).test_client())
    _refused(_exchange(smart, assertion(keys["rsa"])), "no key with kid 'rsa-1'")


def test_keys_from_environment_variable(keys, monkeypatch):
    monkeypatch.setenv("SANDBOX_CLIENT_JWKS_IMAGING_APP_ASYMMETRIC", json.dumps(public_jwks(keys["ec"])))
    smart = SmartFlow(create_app({"TESTING": True}).test_client())
    assert _exchange(smart, assertion(keys["ec"], alg="ES384")).status_code == 200


def test_keys_from_clients_override(keys):
    entry = {"client_id": "my-backend", "client_name": "Test", "token_endpoint_auth_method": "private_key_jwt",
             "jwks": public_jwks(keys["rsa"]), "redirect_uris": ["{app_origin}/callback"],
             "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]}
    smart = SmartFlow(create_app({"TESTING": True, "CLIENTS": [entry]}).test_client())
    response = _exchange(smart, assertion(keys["rsa"], client_id="my-backend"), client_id="my-backend")
    assert response.status_code == 200


def test_private_keys_in_client_jwks_refused(keys):
    with pytest.raises(ValueError, match="only public RSA or EC keys"):
        create_app({"CLIENT_JWKS": {ASYMMETRIC_CLIENT: {"keys": [keys["rsa"].as_dict(private=True)]}}})


def test_client_jwks_for_unknown_client_refused(keys):
    with pytest.raises(ValueError, match="unknown client"):
        create_app({"CLIENT_JWKS": {"nobody": public_jwks(keys["rsa"])}})


def test_discovery_lists_private_key_jwt(asym):
    body = asym.client.get("/fhir/.well-known/smart-configuration").get_json()
    assert "private_key_jwt" in body["token_endpoint_auth_methods_supported"]
    assert body["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert "client-confidential-asymmetric" in body["capabilities"]


# ----------------------------------------------------------------- jwks_uri
class JwksServer:
    """A loopback JWKS server whose document, status and delay the test controls."""

    def __init__(self):
        self.document = {"keys": []}
        self.status = 200
        self.delay = 0.0
        self.raw = None
        self.hits = 0

    def app(self, _port):
        app = Flask("jwks")

        @app.get("/.well-known/jwks.json")
        def jwks():
            self.hits += 1
            if self.delay:
                time.sleep(self.delay)
            body = self.raw if self.raw is not None else json.dumps(self.document)
            return Response(body, status=self.status, content_type="application/json")

        return app


@pytest.fixture
def jwks_server():
    server = JwksServer()
    with live_server(server.app) as port:
        server.url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
        yield server


def _uri_app(url, **settings):
    return SmartFlow(create_app({"TESTING": True, "CLIENT_JWKS_URIS": {ASYMMETRIC_URI_CLIENT: url}, **settings}).test_client())


def test_jwks_uri_client(jwks_server, keys):
    jwks_server.document = public_jwks(keys["rsa"], keys["ec"])
    smart = _uri_app(jwks_server.url)
    for key, alg in ((keys["rsa"], "RS384"), (keys["ec"], "ES384")):
        signed = assertion(key, alg=alg, client_id=ASYMMETRIC_URI_CLIENT)
        assert _exchange(smart, signed, client_id=ASYMMETRIC_URI_CLIENT).status_code == 200
    assert jwks_server.hits == 1  # cached
    _refused(_exchange(smart, assertion(keys["other_rsa"], client_id=ASYMMETRIC_URI_CLIENT),
                       client_id=ASYMMETRIC_URI_CLIENT), "signature does not verify")


def test_jwks_uri_refetched_for_a_new_kid(jwks_server, keys):
    jwks_server.document = public_jwks(keys["rsa"])
    smart = _uri_app(jwks_server.url)
    assert _exchange(smart, assertion(keys["rsa"], client_id=ASYMMETRIC_URI_CLIENT),
                     client_id=ASYMMETRIC_URI_CLIENT).status_code == 200
    rotated = rsa_key("rsa-rotated")
    jwks_server.document = public_jwks(rotated, keys["rsa"])
    response = _exchange(smart, assertion(rotated, client_id=ASYMMETRIC_URI_CLIENT), client_id=ASYMMETRIC_URI_CLIENT)
    assert response.status_code == 200 and jwks_server.hits == 2


@pytest.mark.parametrize("problem,description", [
    ("status", "jwks_uri answered HTTP 500"),
    ("size", "larger than 1024 bytes"),
    ("json", "did not return JSON"),
    ("slow", "could not be fetched (ReadTimeout)"),
])
def test_jwks_uri_failures(jwks_server, keys, problem, description):
    jwks_server.document = public_jwks(keys["rsa"])
    if problem == "status":
        jwks_server.status = 500
    elif problem == "size":
        jwks_server.raw = json.dumps({"keys": [keys["rsa"].as_dict(private=False)] * 5})
    elif problem == "json":
        jwks_server.raw = "<html>keys</html>"
    else:
        jwks_server.delay = 1.0
    smart = _uri_app(jwks_server.url, JWKS_URI_MAX_BYTES=1024, JWKS_URI_TIMEOUT=0.3)
    signed = assertion(keys["rsa"], client_id=ASYMMETRIC_URI_CLIENT)
    _refused(_exchange(smart, signed, client_id=ASYMMETRIC_URI_CLIENT), description)


@pytest.mark.parametrize("url", ["http://192.0.2.10/jwks.json", "https://keys.example.org/jwks.json",
                                 "file:///etc/passwd"])
def test_jwks_uri_must_be_loopback(url, keys):
    smart = _uri_app(url)
    signed = assertion(keys["rsa"], client_id=ASYMMETRIC_URI_CLIENT)
    _refused(_exchange(smart, signed, client_id=ASYMMETRIC_URI_CLIENT), "loopback host")


def test_jwks_uri_from_environment_variable(jwks_server, keys, monkeypatch):
    jwks_server.document = public_jwks(keys["ec"])
    monkeypatch.setenv("SANDBOX_CLIENT_JWKS_URI_IMAGING_APP_ASYMMETRIC_URI", jwks_server.url)
    smart = SmartFlow(create_app({"TESTING": True}).test_client())
    signed = assertion(keys["ec"], alg="ES384", client_id=ASYMMETRIC_URI_CLIENT)
    assert _exchange(smart, signed, client_id=ASYMMETRIC_URI_CLIENT).status_code == 200
