"""Helpers for the sandbox authorization tests (RFC 9207, OIDC, private_key_jwt, launch context)."""

from __future__ import annotations

import base64
import json
import secrets
import time

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

ISSUER = "http://localhost:8800"
TOKEN_ENDPOINT = "http://localhost:8800/oauth2/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASYMMETRIC_CLIENT = "imaging-app-asymmetric"
ASYMMETRIC_URI_CLIENT = "imaging-app-asymmetric-uri"


def authorize_code(smart, *, client_id="imaging-app", scope=None, nonce=None, patient="pt-1001", **launch_body):
    """EHR launch + authorize; return ``(code, pkce, redirect query)``."""
    launch = smart.create_launch(patient, **launch_body)
    pkce = smart.new_pkce()
    extra = {"nonce": nonce} if nonce is not None else {}
    params = smart.authorize_params(pkce, scope=scope or smart.ehr_scope, launch=launch["launch"],
                                    client_id=client_id, **extra)
    response = smart.authorize(params)
    code = smart.code_from(response, params["state"])
    return code, pkce, smart.query_of(response.headers["Location"])


def token_for(smart, **kwargs) -> dict:
    """Full EHR launch with the public client; return the token response JSON."""
    code, pkce, _ = authorize_code(smart, **kwargs)
    response = smart.exchange(code, pkce)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def segments(token: str) -> tuple[dict, dict, bytes]:
    """Header, claims and raw signature of a compact JWS, without verifying anything."""
    head, payload, signature = token.split(".")

    def b64(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    return json.loads(b64(head)), json.loads(b64(payload)), b64(signature)


def served_jwks(client) -> KeySet:
    response = client.get("/oauth2/jwks")
    assert response.status_code == 200
    return KeySet.import_key_set(response.get_json())


def rsa_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, private=True, parameters={"kid": kid})


def ec_key(kid: str) -> ECKey:
    return ECKey.generate_key("P-384", private=True, parameters={"kid": kid})


def public_jwks(*keys) -> dict:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def assertion(key, *, alg="RS384", client_id=ASYMMETRIC_CLIENT, kid=None, **claim_overrides) -> str:
    """A client assertion (SMART 2.2 §Client Authentication: Asymmetric); overrides may set a claim to None to drop it."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": TOKEN_ENDPOINT, "exp": now + 240,
              "jti": secrets.token_urlsafe(16)}
    claims.update(claim_overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    header = {"alg": alg, "typ": "JWT", "kid": kid if kid is not None else key.kid}
    return jwt.encode(header, claims, key, algorithms=[alg])


def assertion_form(signed: str) -> dict:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}
