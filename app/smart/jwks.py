"""The authorization servers' id_token signing keys: JWK Sets fetched through the guarded client and cached.

OpenID Connect Core §10.1.1 (rotation: a ``kid`` not in the cached set means
fetch the set again), OpenID Connect Discovery 1.0 §3/§4 (``jwks_uri`` in
``{issuer}/.well-known/openid-configuration`` when SMART discovery does not
name one), RFC 7517 §5 (JWK Set).

* One cache entry per ``jwks_uri``, fresh for ``ttl_seconds`` (default 1 h).
* An unknown ``kid`` refetches the set **once** per validation, and at most
  ``max_refetches_per_minute`` (default 6) times per ``jwks_uri``: a stream of
  tokens with made-up ``kid`` values cannot make the app hammer the server.
* Fetches are the ``"jwks"`` exchange kind of :class:`~app.outbound.OutboundClient`
  (small caps: :data:`JWKS_LIMITS`), same-origin redirects only, no secret sent.
* Only public RSA and EC keys are kept; symmetric (``oct``) keys and private
  members are dropped, so an HMAC can never be verified with a public key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urljoin

from joserfc.jwk import KeySet

from ..outbound import ExchangeLimits, OutboundClient, OutboundError
from ..outbound.jsonsafe import is_json_media_type
from ..urls import origin_of
from .errors import SmartError

log = logging.getLogger(__name__)

JWKS_LIMITS = ExchangeLimits(max_bytes=64 * 1024, deadline_seconds=5.0, follow_same_origin_redirects=True)
"""Caps of the ``"jwks"`` exchange kind (also used for the openid-configuration fallback)."""

MAX_KEYS = 20
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class JwksUnavailable(SmartError):
    """The issuer's keys could not be had: ``reason`` ``"no-jwks-uri"``, ``"unreachable"``, ``"not-a-jwk-set"``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Entry:
    keys: KeySet
    kids: frozenset[str]
    fetched_at: float


class JwksCache:
    """JWK Sets per ``jwks_uri`` (thread-safe). ``fetches`` counts network fetches (for tests and metrics)."""

    def __init__(self, outbound: OutboundClient, *, ttl_seconds: float = 3600.0, max_refetches_per_minute: int = 6,
                 clock=time.monotonic):
        self._outbound = outbound
        self._ttl = ttl_seconds
        self._max_refetches = max_refetches_per_minute
        self._refetches: dict[str, deque[float]] = {}
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._uris: dict[str, str] = {}
        self._lock = threading.Lock()
        self.fetches = 0

    def jwks_uri_for(self, issuer: str, advertised: str | None) -> str:
        """``advertised`` (SMART ``jwks_uri``), else the ``jwks_uri`` of ``{issuer}/.well-known/openid-configuration``
        (whose ``issuer`` must equal ``issuer``, Discovery §4.3). Raises :class:`JwksUnavailable`."""
        if advertised:
            return advertised
        with self._lock:
            if issuer in self._uris:
                return self._uris[issuer]
        body = self._get_json(urljoin(issuer.rstrip("/") + "/", ".well-known/openid-configuration"))
        uri = body.get("jwks_uri") if isinstance(body, dict) and body.get("issuer") == issuer else None
        if not isinstance(uri, str) or not uri:
            raise JwksUnavailable("no-jwks-uri")
        with self._lock:
            self._uris[issuer] = uri
        return uri

    def keys(self, jwks_uri: str, kid: str | None) -> KeySet:
        """The key set of ``jwks_uri``, refetched when stale or (once, rate-limited) when ``kid`` is not in it.

        Raises :class:`JwksUnavailable` when no set can be had at all.
        """
        now = self._clock()
        with self._lock:
            entry = self._entries.get(jwks_uri)
            fresh = entry is not None and now - entry.fetched_at < self._ttl
            if fresh and (kid is None or kid in entry.kids):
                return entry.keys
            if fresh:  # an unknown kid: refetch, within the budget
                recent = self._refetches.setdefault(jwks_uri, deque())
                while recent and now - recent[0] >= 60:
                    recent.popleft()
                if len(recent) >= self._max_refetches:
                    return entry.keys
                recent.append(now)
        try:
            entry = self._fetch(jwks_uri)
        except JwksUnavailable:
            if entry is not None:
                return entry.keys  # keep using the last good set
            raise
        return entry.keys

    def _fetch(self, jwks_uri: str) -> _Entry:
        body = self._get_json(jwks_uri)
        keys = [k for k in body.get("keys", []) if isinstance(k, dict)][:MAX_KEYS] \
            if isinstance(body, dict) and isinstance(body.get("keys"), list) else None
        if keys is None:
            raise JwksUnavailable("not-a-jwk-set")
        public = [{m: v for m, v in k.items() if m not in _PRIVATE_MEMBERS} for k in keys
                  if k.get("kty") in ("RSA", "EC") and k.get("use", "sig") == "sig"]
        try:
            key_set = KeySet.import_key_set({"keys": public})
        except Exception:
            raise JwksUnavailable("not-a-jwk-set") from None
        entry = _Entry(key_set, frozenset(k["kid"] for k in public if isinstance(k.get("kid"), str)), self._clock())
        with self._lock:
            self._entries[jwks_uri] = entry
            self.fetches += 1
        return entry

    def _get_json(self, url: str):
        try:
            response = self._outbound.get(url, policy=self._outbound.policy("jwks", origin_of(url)),
                                          headers={"Accept": "application/json, application/jwk-set+json"})
        except (OutboundError, ValueError) as exc:
            log.info("JWKS fetch failed: %s", type(exc).__name__)
            raise JwksUnavailable("unreachable") from None
        if response.status != 200 or not is_json_media_type(response.headers.get("Content-Type")):
            raise JwksUnavailable("unreachable")
        try:
            return response.json_object()
        except OutboundError:
            raise JwksUnavailable("not-a-jwk-set") from None
