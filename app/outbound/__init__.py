"""One guarded way out: the client for every outbound request that carries a secret or whose answer is trusted.

Usage (one :class:`OutboundClient` per process, its pools shared)::

    client = OutboundClient(connect_timeout=3.05, read_timeout=20)
    policy = client.policy("fhir", origin_of(iss))            # allowlist + limits of the kind
    page = client.get(url, policy=policy, auth=bearer).json_object()

    oauth = client.oauth_session(client.policy("token", origin_of(token_endpoint)),
                                 client_id=..., code_challenge_method="S256")
    token = oauth.fetch_token(token_endpoint, code=..., code_verifier=...)

Modules: :mod:`.target` (URL checks), :mod:`.policy` (allowlists, limits),
:mod:`.headers` (header checks), :mod:`.jsonsafe` (JSON decoding),
:mod:`.transport` (deadline watchdog, pools), :mod:`.client` (the client),
:mod:`.errors` (typed failures).
"""

from .errors import (InvalidJson, JsonTooDeep, MalformedResponse, OutboundError, RedirectRefused, RefusedTarget,
                     ResponseTooLarge, UnexpectedContentType, UnsafeHeader, UpstreamTimeout, UpstreamUnreachable)
from .policy import DEFAULT_LIMITS, ExchangeLimits, ExchangePolicy
from .target import Origin, ParsedTarget, check_url, format_origin
from .client import GuardedGetSession, GuardedOAuth2Session, Headers, OutboundClient, UpstreamResponse

__all__ = [
    "OutboundClient", "UpstreamResponse", "Headers", "GuardedOAuth2Session", "GuardedGetSession",
    "ExchangePolicy", "ExchangeLimits", "DEFAULT_LIMITS", "ParsedTarget", "Origin", "check_url", "format_origin",
    "OutboundError", "RefusedTarget", "UnsafeHeader", "RedirectRefused", "UpstreamTimeout", "UpstreamUnreachable",
    "ResponseTooLarge", "MalformedResponse", "UnexpectedContentType", "InvalidJson", "JsonTooDeep",
]
