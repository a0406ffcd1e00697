"""OpenID Connect id_tokens for the signed-in clinician (SMART App Launch 2.2 §Scopes for
requesting identity data; OIDC Core §2, §3.1.3.3, §3.1.3.7, §12.2).

* :class:`SigningKeys` — the RS256 key ring behind ``jwks_uri``: one key, generated on
  first use (once per process, shared by every app instance) or loaded from
  ``ID_TOKEN_PRIVATE_KEY`` (PEM text or a path to a PEM file). ``kid`` = RFC 7638 thumbprint.
* :func:`build_id_token` — claims ``iss`` (the issuer, ``PUBLIC_BASE_URL``), ``sub``,
  ``aud`` (client_id), ``exp``, ``iat``, ``auth_time``, ``nonce`` (authorization-code grant
  only, when the authorize request had one), ``fhirUser`` (with the ``fhirUser`` scope),
  signed with joserfc; then the requested fault (:data:`sandbox.config.ID_TOKEN_FAULTS`).

Faults (each produces exactly one defect):

``bad-signature``  signed by the published key, then one byte of the signature changed;
``wrong-aud``      ``aud`` = :data:`WRONG_AUDIENCE`;
``wrong-iss``      ``iss`` = :data:`sandbox.launches.WRONG_ISSUER`;
``expired``        ``iat`` = now − 900 s, ``exp`` = now − 600 s (``auth_time`` unchanged);
``nonce-mismatch`` ``nonce`` = ``"mismatch-" + nonce`` (or ``"mismatch-unrequested"`` when none was sent);
``unknown-kid``    signed by a fresh RSA key that is never published (refetching the JWKS does not help);
``rotate-key``     key rotation: a new key is generated and published first in the JWKS (the
                   old one stays), it signs this and every later id_token; a client holding the
                   old JWKS sees an unknown ``kid`` and succeeds after refetching the JWKS once;
``alg-none``       header ``{"alg": "none", "typ": "JWT", "kid": <published kid>}``, empty signature;
``hs256-with-public-key`` header ``alg: HS256`` with the published ``kid``, HMAC-SHA256 keyed with the
                   published key's SubjectPublicKeyInfo PEM bytes (``RSAKey.as_pem(private=False)``),
                   the classic algorithm-confusion attack.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import threading
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import RSAKey

from . import clock
from .launches import WRONG_ISSUER

ID_TOKEN_ALG = "RS256"
WRONG_AUDIENCE = "some-other-client"


@functools.lru_cache(maxsize=1)
def _process_default_key_pem() -> bytes:
    """One RSA-2048 key per process (generating one per app instance would slow the tests down)."""
    return RSAKey.generate_key(2048, private=True).as_pem(private=True)


def _new_key(pem: bytes | str | None = None) -> RSAKey:
    key = RSAKey.import_key(pem) if pem is not None else RSAKey.generate_key(2048, private=True)
    return RSAKey.import_key(key.as_dict(private=True), parameters={"kid": key.thumbprint(), "use": "sig", "alg": ID_TOKEN_ALG})


def load_private_key_setting(value: str | None) -> bytes | None:
    """``ID_TOKEN_PRIVATE_KEY``: PEM text, or a path to a PEM file, or None (generate)."""
    if not value:
        return None
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    return Path(text).read_bytes()


class SigningKeys:
    """Thread-safe RS256 key ring: :meth:`current` signs, :meth:`jwks` publishes."""

    def __init__(self, private_key_pem: bytes | None = None):
        self._pem = private_key_pem
        self._lock = threading.Lock()
        self._published: list[RSAKey] = []  # newest first; [0] signs

    def _ensure(self) -> None:
        if not self._published:
            self._published.append(_new_key(self._pem if self._pem is not None else _process_default_key_pem()))

    def current(self) -> RSAKey:
        with self._lock:
            self._ensure()
            return self._published[0]

    def rotate(self) -> RSAKey:
        """Generate a new key, publish it first (old keys stay published) and sign with it from now on."""
        key = _new_key()
        with self._lock:
            self._ensure()
            self._published.insert(0, key)
        return key

    def jwks(self) -> dict:
        """Public JWK Set (RFC 7517 §5): ``kty``, ``n``, ``e``, ``kid``, ``use: sig``, ``alg: RS256``."""
        with self._lock:
            self._ensure()
            return {"keys": [key.as_dict(private=False) for key in self._published]}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact_unsigned(header: dict, claims: dict) -> str:
    return _b64(json.dumps(header, separators=(",", ":")).encode()) + "." + _b64(
        json.dumps(claims, separators=(",", ":")).encode()
    )


def build_id_token(
    keys: SigningKeys,
    *,
    issuer: str,
    client_id: str,
    subject: str,
    fhir_user: str | None,
    auth_time: float,
    lifetime: int,
    nonce: str | None = None,
    fault: str | None = None,
) -> str:
    """Return a compact JWS id_token (see module docstring for claims and faults)."""
    now = int(clock.now())
    claims = {"iss": issuer, "sub": subject, "aud": client_id, "iat": now, "exp": now + lifetime,
              "auth_time": int(auth_time)}
    if nonce is not None:
        claims["nonce"] = nonce
    if fhir_user:
        claims["fhirUser"] = fhir_user
    if fault == "wrong-aud":
        claims["aud"] = WRONG_AUDIENCE
    elif fault == "wrong-iss":
        claims["iss"] = WRONG_ISSUER
    elif fault == "expired":
        claims["iat"], claims["exp"] = now - 900, now - 600
    elif fault == "nonce-mismatch":
        claims["nonce"] = "mismatch-" + (nonce if nonce is not None else "unrequested")

    if fault == "unknown-kid":
        key = _new_key()  # never published
    elif fault == "rotate-key":
        key = keys.rotate()
    else:
        key = keys.current()
    kid = key.kid

    if fault == "alg-none":
        return _compact_unsigned({"alg": "none", "typ": "JWT", "kid": kid}, claims) + "."
    if fault == "hs256-with-public-key":
        signing_input = _compact_unsigned({"alg": "HS256", "typ": "JWT", "kid": kid}, claims)
        secret = key.as_pem(private=False)
        return signing_input + "." + _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())

    token = jwt.encode({"alg": ID_TOKEN_ALG, "typ": "JWT", "kid": kid}, claims, key, algorithms=[ID_TOKEN_ALG])
    if fault == "bad-signature":
        head, payload, signature = token.split(".")
        raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
        raw[len(raw) // 2] ^= 0x01
        token = f"{head}.{payload}.{_b64(bytes(raw))}"
    return token
