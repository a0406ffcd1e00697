"""OpenID Connect: id_token claims and signature, JWKS, openid-configuration, Practitioner, fault switches."""

import hashlib
import hmac
import time

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidKeyIdError, JoseError, UnsupportedAlgorithmError
from joserfc.jwk import RSAKey

import sandbox.clock
from conftest import SmartFlow
from sandbox import create_app
from sandbox_auth_helpers import ISSUER, authorize_code, segments, served_jwks, token_for

FHIR_USER = "http://localhost:8800/fhir/Practitioner/dr-demo"


def _verify(token, keys):
    return jwt.decode(token, keys, algorithms=["RS256"])


def test_id_token_claims_and_signature(smart):
    before = int(time.time())
    body = token_for(smart, nonce="n-0S6_WzA2Mj")
    header, claims, _ = segments(body["id_token"])
    keys = served_jwks(smart.client)
    (published,) = keys.keys
    assert header == {"alg": "RS256", "typ": "JWT", "kid": published.kid}
    assert published.kid == published.thumbprint()
    assert published.as_dict()["use"] == "sig" and published.as_dict()["alg"] == "RS256"
    assert "d" not in smart.client.get("/oauth2/jwks").get_json()["keys"][0]
    verified = _verify(body["id_token"], keys)
    assert verified.claims == claims
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser"}
    assert claims["iss"] == ISSUER
    assert claims["sub"] == "dr-demo"
    assert claims["aud"] == "imaging-app"
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["fhirUser"] == FHIR_USER
    assert claims["exp"] - claims["iat"] == 300
    assert before <= claims["iat"] <= int(time.time())
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": ISSUER}, aud={"essential": True, "value": "imaging-app"},
                          exp={"essential": True}).validate(claims)


def test_jwks_is_public_with_cors(smart):
    response = smart.client.get("/oauth2/jwks")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.content_type == "application/json"
    (key,) = response.get_json()["keys"]
    assert key["kty"] == "RSA" and set(key) == {"kty", "n", "e", "kid", "use", "alg"}


def test_openid_alone_has_no_fhir_user_claim_and_no_nonce_unless_sent(smart):
    body = token_for(smart, scope="launch openid patient/ImagingStudy.rs")
    _, claims, _ = segments(body["id_token"])
    assert "fhirUser" not in claims and "nonce" not in claims
    assert claims["sub"] == "dr-demo"
    _verify(body["id_token"], served_jwks(smart.client))


def test_no_id_token_without_openid(smart):
    body = token_for(smart, scope="launch fhirUser patient/ImagingStudy.rs")
    assert "id_token" not in body


def test_confidential_client_id_token_aud(smart):
    code, pkce, _ = authorize_code(smart, client_id=smart.confidential_client)
    body = smart.exchange(code, pkce, basic=(smart.confidential_client, smart.confidential_secret)).get_json()
    assert segments(body["id_token"])[1]["aud"] == "imaging-app-confidential"


def test_refresh_issues_a_new_id_token_without_nonce(smart, monkeypatch):
    first = token_for(smart, scope=smart.ehr_scope + " offline_access", nonce="abc")
    _, original, _ = segments(first["id_token"])
    real_now = sandbox.clock.now
    monkeypatch.setattr(sandbox.clock, "now", lambda: real_now() + 100)
    refreshed = smart.token({"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                             "client_id": "imaging-app"}).get_json()
    claims = _verify(refreshed["id_token"], served_jwks(smart.client)).claims
    assert "nonce" not in claims
    assert {k: claims[k] for k in ("iss", "sub", "aud", "fhirUser", "auth_time")} == {
        k: original[k] for k in ("iss", "sub", "aud", "fhirUser", "auth_time")}
    assert claims["iat"] >= original["iat"] + 100


def test_openid_configuration(smart):
    response = smart.client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    body = response.get_json()
    assert body["issuer"] == ISSUER
    assert body["jwks_uri"] == "http://localhost:8800/oauth2/jwks"
    assert body["authorization_endpoint"] == "http://localhost:8800/oauth2/authorize"
    assert body["token_endpoint"] == "http://localhost:8800/oauth2/token"
    assert body["id_token_signing_alg_values_supported"] == ["RS256"]
    assert body["response_types_supported"] == ["code"]
    assert body["subject_types_supported"] == ["public"]
    assert {"openid", "fhirUser"} <= set(body["scopes_supported"])


def test_smart_configuration_lists_oidc(smart):
    body = smart.client.get("/fhir/.well-known/smart-configuration").get_json()
    assert body["jwks_uri"] == "http://localhost:8800/oauth2/jwks"
    assert "sso-openid-connect" in body["capabilities"]
    assert {"openid", "fhirUser"} <= set(body["scopes_supported"])
    assert body["id_token_signing_alg_values_supported"] == ["RS256"]


def test_configured_private_key_signs(tmp_path):
    key = RSAKey.generate_key(2048, private=True)
    path = tmp_path / "idtoken.pem"
    path.write_bytes(key.as_pem(private=True))
    for value in (str(path), key.as_pem(private=True).decode()):
        smart = SmartFlow(create_app({"TESTING": True, "ID_TOKEN_PRIVATE_KEY": value}).test_client())
        body = token_for(smart)
        header, _, _ = segments(body["id_token"])
        assert header["kid"] == key.thumbprint()
        jwt.decode(body["id_token"], key, algorithms=["RS256"])


# ----------------------------------------------------------------- Practitioner
def test_practitioner_readable_with_openid_fhiruser(smart):
    body = token_for(smart)
    response = smart.fhir("Practitioner/dr-demo", body["access_token"])
    assert response.status_code == 200
    resource = response.get_json()
    assert resource["resourceType"] == "Practitioner" and resource["id"] == "dr-demo"
    assert resource["name"][0]["text"] == "Dr. Alex Morgan"
    _, claims, _ = segments(body["id_token"])
    assert claims["fhirUser"] == "http://localhost:8800/fhir/Practitioner/" + resource["id"]


def test_openid_fhiruser_reads_only_own_practitioner(smart):
    body = token_for(smart)
    response = smart.fhir("Practitioner/dr-radiology", body["access_token"])
    assert response.status_code == 403
    assert response.get_json()["issue"][0]["code"] == "forbidden"


@pytest.mark.parametrize("scope", ["launch patient/ImagingStudy.rs", "launch openid patient/ImagingStudy.rs",
                                   "launch fhirUser patient/ImagingStudy.rs", "launch patient/Practitioner.r"])
def test_practitioner_forbidden_without_identity_or_user_scope(smart, scope):
    body = token_for(smart, scope=scope)
    response = smart.fhir("Practitioner/dr-demo", body["access_token"])
    assert response.status_code == 403
    assert response.get_json()["issue"][0]["diagnostics"].startswith("insufficient_scope")


@pytest.mark.parametrize("scope", ["launch user/Practitioner.r", "launch user/Practitioner.read", "launch user/*.rs"])
def test_practitioner_readable_with_user_scope(smart, scope):
    body = token_for(smart, scope=scope)
    assert smart.fhir("Practitioner/dr-radiology", body["access_token"]).get_json()["name"][0]["family"] == "Reyes"
    assert smart.fhir("Practitioner/nobody", body["access_token"]).status_code == 404


def test_practitioner_needs_a_token(smart):
    response = smart.fhir("Practitioner/dr-demo")
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


# ----------------------------------------------------------------- fault switches
FAULTS = ["bad-signature", "wrong-aud", "wrong-iss", "expired", "nonce-mismatch", "unknown-kid", "rotate-key",
          "alg-none", "hs256-with-public-key"]


@pytest.fixture(params=["launch", "config"])
def faulty(request, smart):
    """``faulty(fault) -> (smart, jwks_before, id_token)`` via a launch fault or the ID_TOKEN_FAULT setting."""

    def make(fault):
        if request.param == "launch":
            before = served_jwks(smart.client)
            return smart, before, token_for(smart, nonce="n-1", faults={"id_token": fault})["id_token"]
        other = SmartFlow(create_app({"TESTING": True, "ID_TOKEN_FAULT": fault}).test_client())
        before = served_jwks(other.client)
        return other, before, token_for(other, nonce="n-1")["id_token"]

    return make


def test_bad_signature(faulty):
    smart, keys, token = faulty("bad-signature")
    header, claims, _ = segments(token)
    assert header["kid"] == keys.keys[0].kid and claims["aud"] == "imaging-app" and claims["nonce"] == "n-1"
    with pytest.raises(BadSignatureError):
        _verify(token, keys)


def test_wrong_aud(faulty):
    smart, keys, token = faulty("wrong-aud")
    claims = _verify(token, keys).claims
    assert claims["aud"] == "some-other-client" and claims["iss"] == ISSUER


def test_wrong_iss(faulty):
    smart, keys, token = faulty("wrong-iss")
    claims = _verify(token, keys).claims
    assert claims["iss"] == "https://wrong-issuer.example.net" and claims["aud"] == "imaging-app"


def test_expired(faulty):
    smart, keys, token = faulty("expired")
    claims = _verify(token, keys).claims
    now = int(time.time())
    assert claims["exp"] < now and claims["exp"] - claims["iat"] == 300
    with pytest.raises(ExpiredTokenError):
        jwt.JWTClaimsRegistry(exp={"essential": True}).validate(claims)


def test_nonce_mismatch(faulty):
    smart, keys, token = faulty("nonce-mismatch")
    claims = _verify(token, keys).claims
    assert claims["nonce"] == "mismatch-n-1"


def test_unknown_kid_stays_unknown_after_refetch(faulty):
    smart, keys, token = faulty("unknown-kid")
    header, _, _ = segments(token)
    assert header["alg"] == "RS256"
    assert header["kid"] not in {k.kid for k in keys.keys}
    refetched = served_jwks(smart.client)
    assert header["kid"] not in {k.kid for k in refetched.keys}
    with pytest.raises(InvalidKeyIdError):
        _verify(token, refetched)


def test_rotate_key_succeeds_after_one_refetch(faulty):
    smart, cached, token = faulty("rotate-key")
    header, _, _ = segments(token)
    with pytest.raises(InvalidKeyIdError):
        _verify(token, cached)  # the client's cached JWKS does not know the new kid
    refetched = served_jwks(smart.client)
    assert [k.kid for k in refetched.keys] == [header["kid"], cached.keys[0].kid]  # new first, old kept
    assert _verify(token, refetched).claims["aud"] == "imaging-app"


def test_rotation_persists_for_later_tokens(smart):
    token_for(smart, faults={"id_token": "rotate-key"})
    rotated = served_jwks(smart.client)
    later = token_for(smart)["id_token"]
    assert segments(later)[0]["kid"] == rotated.keys[0].kid
    _verify(later, rotated)


def test_alg_none(faulty):
    smart, keys, token = faulty("alg-none")
    header, claims, signature = segments(token)
    assert header["alg"] == "none" and signature == b"" and token.endswith(".")
    assert claims["aud"] == "imaging-app"
    with pytest.raises(JoseError):
        _verify(token, keys)


def test_hs256_with_public_key(faulty):
    smart, keys, token = faulty("hs256-with-public-key")
    header, claims, signature = segments(token)
    assert header["alg"] == "HS256" and header["kid"] == keys.keys[0].kid
    public_pem = keys.keys[0].as_pem(private=False)
    signing_input = token.rsplit(".", 1)[0].encode()
    assert hmac.compare_digest(signature, hmac.new(public_pem, signing_input, hashlib.sha256).digest())
    with pytest.raises(UnsupportedAlgorithmError):
        _verify(token, keys)


def test_unknown_fault_refused(smart):
    response = smart.client.post("/ehr/api/launches", json={"patient": "pt-1001", "faults": {"id_token": "weird"}})
    assert response.status_code == 400 and "id_token" in response.get_json()["error"]
    with pytest.raises(ValueError, match="ID_TOKEN_FAULT"):
        create_app({"ID_TOKEN_FAULT": "weird"})


def test_launch_fault_does_not_leak_to_other_launches(smart):
    token_for(smart, faults={"id_token": "wrong-aud"})
    clean = token_for(smart)["id_token"]
    assert _verify(clean, served_jwks(smart.client)).claims["aud"] == "imaging-app"
