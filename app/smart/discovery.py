"""SMART server discovery: where to authorize and get tokens, and what the server supports.

SMART App Launch 2.2 §Conformance (``{iss}/.well-known/smart-configuration``),
falling back to the CapabilityStatement's ``oauth-uris`` extension
(SMART App Launch 1.0 §Conformance, in any ``rest[].security`` entry) for
older servers. Results are cached per ``iss`` for ``ttl_seconds``. Redirects
are not followed. Every value read is type-checked: a wrong-typed field is
ignored, never trusted.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from authlib.common.security import is_secure_transport

from ..outbound import OutboundClient, OutboundError, UpstreamTimeout, UpstreamUnreachable
from ..outbound.jsonsafe import is_json_media_type
from ..urls import base_dir, iss_key, origin_of
from .errors import DiscoveryFailed

log = logging.getLogger(__name__)

OAUTH_URIS_EXTENSION = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
JSON_ACCEPT = "application/json, application/fhir+json;q=0.9"
FHIR_ACCEPT = "application/fhir+json, application/json;q=0.9"


@dataclass(frozen=True)
class SmartConfiguration:
    """What the app needs from discovery; endpoints are absolute URLs (relative ones resolved against ``iss``).

    ``issuer``: the authorization server's issuer identifier when the server
    names one (SMART 2.2 §Conformance ``issuer``; RFC 8414 §2), compared with
    the ``iss`` of its authorization responses (RFC 9207 §2.4);
    ``authorization_response_iss_parameter_supported``: the server promises that
    ``iss`` (RFC 9207 §3), so a response without it is refused.
    """

    authorization_endpoint: str
    token_endpoint: str
    capabilities: frozenset[str] = frozenset()
    code_challenge_methods_supported: tuple[str, ...] = ()
    issuer: str | None = None
    authorization_response_iss_parameter_supported: bool = False
    jwks_uri: str | None = None
    scopes_supported: frozenset[str] = frozenset()
    associated_endpoints: tuple[str, ...] = ()
    """SMART 2.2 §Conformance ``associated_endpoints[].url``: other services that accept this server's access
    tokens (e.g. a DICOMweb base), absolute http(s) URLs without a trailing slash."""

    @property
    def supports_openid(self) -> bool:
        """OpenID Connect can be asked for: ``sso-openid-connect`` or ``openid`` in ``scopes_supported``, and the
        server names its ``issuer`` (an id_token's ``iss`` is checked against it, OIDC Core §3.1.3.7 step 2)."""
        return self.issuer is not None and ("sso-openid-connect" in self.capabilities
                                            or "openid" in self.scopes_supported)

    @property
    def uses_v2_scopes(self) -> bool:
        """SMART v2 scope syntax (``.rs``) only when the server lists ``permission-v2``; otherwise v1 (``.read``)."""
        return "permission-v2" in self.capabilities


def _strings(value: Any) -> tuple[str, ...]:
    """The string items of a JSON array; anything else gives ``()``."""
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _dicts(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _associated_endpoints(value: Any) -> tuple[str, ...]:
    """``associated_endpoints[].url`` (SMART 2.2 §Conformance): absolute http(s) URLs, printable, at most 2048
    characters, trailing slash removed; at most 32; anything else skipped."""
    urls = []
    for item in _dicts(value)[:32]:
        url = item.get("url")
        if isinstance(url, str) and 0 < len(url) <= 2048 and url.isprintable() and \
                url.lower().startswith(("https://", "http://")):
            urls.append(url.rstrip("/"))
    return tuple(urls)


class SmartDiscovery:
    """Discovers and caches :class:`SmartConfiguration` per ``iss`` (thread-safe)."""

    def __init__(self, outbound: OutboundClient, ttl_seconds: float = 3600.0):
        self._outbound = outbound
        self._ttl = ttl_seconds
        self._cache: dict[tuple, tuple[float, SmartConfiguration]] = {}
        self._lock = threading.Lock()

    def discover(self, iss: str) -> SmartConfiguration:
        """Return the server's SMART configuration, from cache when fresh.

        Raises :class:`DiscoveryFailed` when neither source yields both an
        authorize and a token endpoint, or an endpoint is not https off
        loopback (failures are not cached).
        """
        key = iss_key(iss)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] > now:
                return hit[1]
        policy = self._outbound.policy("discovery", origin_of(iss))
        well_known, problem = self._get_json(urljoin(base_dir(iss), ".well-known/smart-configuration"), JSON_ACCEPT,
                                             policy)
        config = self._from_well_known(iss, well_known)
        if config is None:
            metadata, metadata_problem = self._get_json(urljoin(base_dir(iss), "metadata"), FHIR_ACCEPT, policy)
            config = self._from_capability_statement(iss, metadata)
            problem = problem and metadata_problem
        if config is None:
            raise DiscoveryFailed(problem or "no-endpoints")
        if not (is_secure_transport(config.authorization_endpoint) and is_secure_transport(config.token_endpoint)):
            raise DiscoveryFailed("insecure-endpoint")
        with self._lock:
            self._cache[key] = (now + self._ttl, config)
        return config

    def forget(self, iss: str) -> None:
        """Drop the cached configuration of ``iss`` (the next launch discovers it again)."""
        with self._lock:
            self._cache.pop(iss_key(iss), None)

    def _get_json(self, url: str, accept: str, policy) -> tuple[dict | None, str | None]:
        """``(body, problem)``: the JSON object answered, or ``None`` and, when the server was not reached, why.

        Only same-origin redirects are followed (no secret is sent here); any
        other failure of the answer (redirect elsewhere, too large, not JSON,
        too deep) counts as "answered without endpoints".
        """
        try:
            response = self._outbound.get(url, policy=policy, headers={"Accept": accept})
            if response.status != 200 or not is_json_media_type(response.headers.get("Content-Type")):
                log.info("discovery answered %s %s", response.status, response.media_type or "-")
                return None, None
            return response.json_object(), None
        except UpstreamTimeout:
            return None, "timeout"
        except UpstreamUnreachable:
            return None, "unreachable"
        except OutboundError as exc:
            log.info("discovery answer refused: %s", type(exc).__name__)
            return None, None

    @staticmethod
    def _from_well_known(iss: str, body: dict | None) -> SmartConfiguration | None:
        if not body:
            return None
        authorize, token = body.get("authorization_endpoint"), body.get("token_endpoint")
        if not (isinstance(authorize, str) and isinstance(token, str) and authorize and token):
            return None
        issuer = body.get("issuer")
        jwks_uri = body.get("jwks_uri")
        return SmartConfiguration(
            authorization_endpoint=urljoin(base_dir(iss), authorize),
            token_endpoint=urljoin(base_dir(iss), token),
            capabilities=frozenset(_strings(body.get("capabilities"))),
            code_challenge_methods_supported=_strings(body.get("code_challenge_methods_supported")),
            issuer=issuer if isinstance(issuer, str) and 0 < len(issuer) <= 2048 and issuer.isprintable() else None,
            authorization_response_iss_parameter_supported=body.get(
                "authorization_response_iss_parameter_supported") is True,
            jwks_uri=urljoin(base_dir(iss), jwks_uri) if isinstance(jwks_uri, str) and 0 < len(jwks_uri) <= 2048
            and jwks_uri.isprintable() else None,
            scopes_supported=frozenset(_strings(body.get("scopes_supported"))),
            associated_endpoints=_associated_endpoints(body.get("associated_endpoints")))

    @staticmethod
    def _from_capability_statement(iss: str, body: dict | None) -> SmartConfiguration | None:
        if not body:
            return None
        for rest in _dicts(body.get("rest")):
            security = rest.get("security")
            for extension in _dicts(security.get("extension") if isinstance(security, dict) else None):
                if extension.get("url") != OAUTH_URIS_EXTENSION:
                    continue
                uris = {sub.get("url"): sub.get("valueUri") or sub.get("valueUrl")
                        for sub in _dicts(extension.get("extension"))}
                authorize, token = uris.get("authorize"), uris.get("token")
                if isinstance(authorize, str) and isinstance(token, str) and authorize and token:
                    return SmartConfiguration(
                        authorization_endpoint=urljoin(base_dir(iss), authorize),
                        token_endpoint=urljoin(base_dir(iss), token))
        return None
