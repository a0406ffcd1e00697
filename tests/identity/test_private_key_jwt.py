"""Asymmetric client authentication (SMART 2.2 §Client Authentication: Asymmetric; RFC 7523) against the sandbox's
``imaging-app-asymmetric`` client, given the app's published JWK Set."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import KeySet

from app import ConfigError, create_app
from app.smart.client_auth import ASSERTION_LIFETIME_SECONDS, SmartPrivateKeyJWT, signing_keys_for
from sandbox import create_app as create_sandbox
from tests.app.test_end_to_end import APP_ORIGIN, SandboxDriver, _ids
from tests.support import live_server, sandbox_registration


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _key(alg: str):
    return rsa.generate_private_key(65537, 2048) if alg == "RS384" else ec.generate_private_key(ec.SECP384R1())


def _app(tmp_path, monkeypatch, ehr_base: str, alg: str, keys: list) -> object:
    envs = []
    for index, key in enumerate(keys):
        path = tmp_path / f"key-{alg}-{index}.pem"
        path.write_bytes(_pem(key))
        monkeypatch.setenv(f"E2E_JWT_KEY_{index}", str(path))
        envs.append(f"E2E_JWT_KEY_{index}")
    registration = sandbox_registration(APP_ORIGIN, ehr_base, client_id="imaging-app-asymmetric",
                                        token_endpoint_auth_method="private_key_jwt",
                                        private_key_jwt={"alg": alg, "key_file_envs": envs})
    return create_app(registration, secret_key="e2e", store_path=tmp_path / "launches.sqlite3")


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_private_key_jwt_launch_with_published_keys(tmp_path, monkeypatch, alg):
    signing, next_key = _key(alg), _key(alg)
    app = _app(tmp_path, monkeypatch, "http://localhost:1", alg, [signing, next_key])
    published = app.test_client().get("/.well-known/jwks.json")
    assert published.status_code == 200
    jwks = published.get_json()
    assert len(jwks["keys"]) == 2 and all("d" not in k and k["alg"] == alg for k in jwks["keys"])
    with live_server(lambda port: create_sandbox({"PUBLIC_BASE_URL": f"http://localhost:{port}", "APP_ORIGIN": APP_ORIGIN,
                                                  "CLIENT_JWKS": {"imaging-app-asymmetric": jwks}})) as port:
        ehr = SandboxDriver(_app(tmp_path, monkeypatch, f"http://localhost:{port}", alg, [signing, next_key])
                            .test_client(), f"http://localhost:{port}")
        response = ehr.launch_to_list("pt-1002")
        assert response.status_code == 200, response.get_data(as_text=True)
        assert _ids(response.get_data(as_text=True)) == ["is-1002-ct"]
        assert "Dr. Alex Morgan" in response.get_data(as_text=True)


def test_a_key_the_ehr_does_not_hold_is_refused_with_a_clear_page(tmp_path, monkeypatch):
    registered, other = _key("ES384"), _key("ES384")
    public = _app(tmp_path, monkeypatch, "http://localhost:1", "ES384", [registered]).test_client() \
        .get("/.well-known/jwks.json").get_json()
    with live_server(lambda port: create_sandbox({"PUBLIC_BASE_URL": f"http://localhost:{port}", "APP_ORIGIN": APP_ORIGIN,
                                                  "CLIENT_JWKS": {"imaging-app-asymmetric": public}})) as port:
        ehr = SandboxDriver(_app(tmp_path, monkeypatch, f"http://localhost:{port}", "ES384", [other]).test_client(),
                            f"http://localhost:{port}")
        response = ehr.launch_to_list("pt-1002")
        assert response.status_code == 502
        page = response.get_data(as_text=True)
        assert "The EHR did not accept this app&#39;s credentials" in page
        assert "invalid_client" in page


def test_the_assertion_has_kid_iss_sub_aud_short_exp_and_a_fresh_jti(tmp_path, monkeypatch):
    key = _key("RS384")
    app = _app(tmp_path, monkeypatch, "http://localhost:1", "RS384", [key])
    ehr = app.extensions["imaging_app"].settings.ehrs[0]
    keys = signing_keys_for(ehr)
    auth = SmartPrivateKeyJWT(keys, "https://ehr.example.org/oauth2/token")

    class Client:
        client_id = "imaging-app-asymmetric"

    first, second = (jwt.decode(auth.sign(Client, "https://ehr.example.org/oauth2/token"),
                                KeySet.import_key_set(app.test_client().get("/.well-known/jwks.json").get_json()),
                                algorithms=["RS384"]) for _ in range(2))
    assert first.header == {"alg": "RS384", "kid": keys.kid, "typ": "JWT"}
    assert first.claims["iss"] == first.claims["sub"] == "imaging-app-asymmetric"
    assert first.claims["aud"] == "https://ehr.example.org/oauth2/token"
    assert first.claims["exp"] - first.claims["iat"] == ASSERTION_LIFETIME_SECONDS <= 300
    assert first.claims["jti"] != second.claims["jti"]


def test_a_wrong_key_type_stops_the_app_naming_the_variable(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="E2E_JWT_KEY_0: .* is not a PEM EC private key"):
        path = tmp_path / "rsa.pem"
        path.write_bytes(_pem(_key("RS384")))
        monkeypatch.setenv("E2E_JWT_KEY_0", str(path))
        create_app(sandbox_registration(APP_ORIGIN, "http://localhost:1", client_id="imaging-app-asymmetric",
                                        token_endpoint_auth_method="private_key_jwt",
                                        private_key_jwt={"alg": "ES384", "key_file_envs": ["E2E_JWT_KEY_0"]}),
                   secret_key="e2e", store_path=tmp_path / "s.sqlite3")
