"""Asymmetric client authentication ``private_key_jwt`` (SMART App Launch 2.2 §Client
Authentication: Asymmetric; RFC 7523 §2.2, §3; RFC 7521 §4.2).

The token endpoint accepts ``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``
and ``client_assertion``, and checks, each failure answered ``invalid_client`` (400) with a
description naming the check:

* header: ``alg`` is ``RS384`` or ``ES384`` (nothing else, never ``none``/``HS*``), ``kid``
  present, ``typ`` (if present) ``JWT``;
* ``iss`` = ``sub`` = a registered ``private_key_jwt`` client (and = form ``client_id`` if sent);
* signature with the client key of that ``kid`` (inline ``jwks``, config override, or ``jwks_uri``);
* ``aud`` = the token endpoint URL (string, or an array containing it);
* ``exp`` present, in the future, at most :data:`MAX_ASSERTION_LIFETIME` s ahead; ``nbf`` (if any) not in the future;
* ``jti`` present and never seen before for that client (kept until the assertion's ``exp``).

``jwks_uri``: fetched only from loopback hosts (``127.0.0.1``, ``::1``, ``localhost``), without
redirects, with ``JWKS_URI_TIMEOUT`` seconds connect/read timeout and at most
``JWKS_URI_MAX_BYTES`` bytes; cached ``JWKS_URI_CACHE_SECONDS`` and refetched once when the
``kid`` is not in the cached set (client key rotation).
"""

from __future__ import annotations

import ipaddress
import json
import threading
from typing import Any, Mapping
from urllib.parse import urlsplit

import requests
from authlib.oauth2.rfc6749.errors import InvalidClientError
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from . import clock

PRIVATE_KEY_JWT = "private_key_jwt"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME = 300
LOOPBACK_NAMES = {"localhost"}


class ClientKeyError(Exception):
    """The client's keys could not be obtained (bad JWKS, jwks_uri unreachable / too big / not loopback)."""


def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def import_jwks(data: Any) -> KeySet:
    """A public JWK Set; refuses a non-object, a missing ``keys`` list, private or symmetric keys."""
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        raise ClientKeyError("a JWK Set must be an object with a 'keys' array")
    for key in data["keys"]:
        if not isinstance(key, Mapping) or key.get("kty") not in ("RSA", "EC") or "d" in key:
            raise ClientKeyError("client JWK Set may hold only public RSA or EC keys")
    if not data["keys"]:
        return KeySet([])  # registered, but no key yet: every assertion is refused
    try:
        return KeySet.import_key_set(dict(data))
    except (JoseError, ValueError, TypeError) as exc:
        raise ClientKeyError(f"unusable client JWK Set: {exc}") from None


class JwtIdCache:
    """Seen ``(client_id, jti)`` pairs until their assertion's ``exp`` (replay protection)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], float] = {}

    def use(self, client_id: str, jti: str, exp: float) -> bool:
        """Record the pair; False if it was already used."""
        now = clock.now()
        with self._lock:
            self._seen = {k: v for k, v in self._seen.items() if v >= now} if len(self._seen) > 1000 else self._seen
            if (client_id, jti) in self._seen:
                return False
            self._seen[(client_id, jti)] = exp
            return True


class ClientKeys:
    """Resolves a client's public keys: config override, inline ``jwks``, or ``jwks_uri``."""

    def __init__(self, settings: Mapping[str, Any]):
        self.timeout = float(settings["JWKS_URI_TIMEOUT"])
        self.max_bytes = int(settings["JWKS_URI_MAX_BYTES"])
        self.cache_seconds = int(settings["JWKS_URI_CACHE_SECONDS"])
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, KeySet]] = {}

    def fetch(self, url: str) -> KeySet:
        if not is_loopback_url(url):
            raise ClientKeyError("jwks_uri must be an http(s) URL on a loopback host in this sandbox")
        try:
            with requests.get(url, timeout=(self.timeout, self.timeout), stream=True, allow_redirects=False,
                              headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise ClientKeyError(f"jwks_uri answered HTTP {response.status_code}")
                body = b""
                for chunk in response.iter_content(8192):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise ClientKeyError(f"jwks_uri response is larger than {self.max_bytes} bytes")
        except requests.RequestException as exc:
            raise ClientKeyError(f"jwks_uri could not be fetched ({type(exc).__name__})") from None
        try:
            data = json.loads(body)
        except ValueError:
            raise ClientKeyError("jwks_uri did not return JSON") from None
        return import_jwks(data)

    def key_set(self, client, kid: str) -> KeySet:
        """Keys of *client* able to hold *kid* (jwks_uri: cached, refetched once for an unknown kid)."""
        if client.jwks is not None:
            return import_jwks(client.jwks)
        if not client.jwks_uri:
            raise ClientKeyError("no keys are registered for this client")
        now = clock.now()
        with self._lock:
            cached = self._cache.get(client.client_id)
        if cached and now - cached[0] < self.cache_seconds and any(k.kid == kid for k in cached[1].keys):
            return cached[1]
        keys = self.fetch(client.jwks_uri)
        with self._lock:
            self._cache[client.client_id] = (now, keys)
        return keys


def _extract(assertion: str) -> tuple[dict, dict]:
    """Header and claims of a compact JWS, unverified (to find the client and the ``kid``)."""
    try:
        obj = jws.extract_compact(assertion.encode())
        claims = json.loads(obj.payload)
    except (JoseError, ValueError, UnicodeError):
        raise InvalidClientError(description="client_assertion is not a valid JWT") from None
    if not isinstance(claims, dict):
        raise InvalidClientError(description="client_assertion is not a valid JWT")
    return obj.headers(), claims


class PrivateKeyJwtAuth:
    """authlib client-auth method (``server.register_client_auth_method``) ``private_key_jwt``
    with the SMART / RFC 7523 checks above; signatures verified by joserfc."""

    def __init__(self, token_endpoint: str, client_keys: ClientKeys):
        self.token_endpoint = token_endpoint
        self.client_keys = client_keys
        self.jti_cache = JwtIdCache()

    def __call__(self, query_client, request):
        data = request.form
        assertion_type, assertion = data.get("client_assertion_type"), data.get("client_assertion")
        if assertion_type is None and assertion is None:
            return None
        if assertion_type != ASSERTION_TYPE or not assertion:
            raise InvalidClientError(description=f"client_assertion_type must be {ASSERTION_TYPE} with a client_assertion")
        headers, claims = _extract(assertion)
        alg = headers.get("alg")
        if alg not in ASSERTION_ALGORITHMS:
            raise InvalidClientError(description=f"client_assertion alg must be one of {', '.join(ASSERTION_ALGORITHMS)}")
        kid = headers.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidClientError(description="client_assertion header needs a 'kid'")
        if "typ" in headers and headers["typ"] != "JWT":
            raise InvalidClientError(description="client_assertion typ must be 'JWT'")
        client_id = claims.get("sub")
        if not isinstance(client_id, str) or claims.get("iss") != client_id:
            raise InvalidClientError(description="client_assertion iss and sub must both be the client_id")
        if data.get("client_id") not in (None, client_id):
            raise InvalidClientError(description="client_id does not match the client_assertion")
        client = query_client(client_id)
        if client is None or not client.check_endpoint_auth_method(PRIVATE_KEY_JWT, "token"):
            raise InvalidClientError(description="client is not registered for private_key_jwt")
        try:
            keys = self.client_keys.key_set(client, kid)
        except ClientKeyError as exc:
            raise InvalidClientError(description=str(exc)) from None
        if not any(k.kid == kid for k in keys.keys):
            raise InvalidClientError(description=f"no key with kid {kid!r} is registered for this client")
        try:
            jws.deserialize_compact(assertion, keys, algorithms=list(ASSERTION_ALGORITHMS))
        except JoseError:
            raise InvalidClientError(description="client_assertion signature does not verify with the client's key") from None
        self.verify_claims(claims)
        request.client = client
        return client

    def verify_claims(self, claims):
        now = clock.now()
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.token_endpoint not in audiences:
            raise InvalidClientError(description=f"client_assertion aud must be the token endpoint {self.token_endpoint}")
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            raise InvalidClientError(description="client_assertion needs a numeric 'exp'")
        if exp <= now:
            raise InvalidClientError(description="client_assertion has expired")
        if exp > now + MAX_ASSERTION_LIFETIME:
            raise InvalidClientError(description="client_assertion exp is more than 5 minutes in the future")
        nbf = claims.get("nbf")
        if nbf is not None and (not isinstance(nbf, (int, float)) or nbf > now):
            raise InvalidClientError(description="client_assertion is not valid yet (nbf)")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise InvalidClientError(description="client_assertion needs a 'jti'")
        if not self.jti_cache.use(claims["sub"], jti, exp):
            raise InvalidClientError(description="client_assertion jti has already been used")
