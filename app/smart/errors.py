"""Protocol facts of SMART discovery and authorization (what happened, not what the clinician reads).

The web layer (:mod:`app.web.errors`) turns each into a page; nothing here
holds user-facing sentences. Upstream text is kept as data, truncated.
"""

from __future__ import annotations


class SmartError(Exception):
    """Base of the SMART client's failures."""


class DiscoveryFailed(SmartError):
    """Discovery gave no usable authorization and token endpoints.

    ``reason``: ``"unreachable"`` / ``"timeout"`` (no answer from either source),
    ``"no-endpoints"`` (answers without both endpoints), ``"insecure-endpoint"``
    (an endpoint is plain http off loopback). SMART App Launch 2.2 §Conformance.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class AuthorizationRefused(SmartError):
    """The redirect carried ``error`` (RFC 6749 §4.1.2.1): ``error`` code and ``description`` (truncated)."""

    def __init__(self, error: str, description: str | None):
        super().__init__(error)
        self.error = error[:100]
        self.description = description[:500] if description else None


class TokenEndpointError(SmartError):
    """The token endpoint refused or failed (RFC 6749 §5.2).

    ``during``: ``"code exchange"`` or ``"token refresh"``; ``status``: HTTP status
    when there was an answer; ``error`` / ``description``: the OAuth2 error
    fields when the body had them.
    """

    def __init__(self, during: str, *, status: int | None = None, error: str | None = None,
                 description: str | None = None):
        super().__init__(during)
        self.during = during
        self.status = status
        self.error = error[:100] if error else None
        self.description = description[:500] if description else None


class InvalidTokenResponse(SmartError):
    """A 200 token response the app cannot use; ``problem`` says which field (SMART 2.2 §Response to token request)."""

    def __init__(self, problem: str, during: str = "code exchange"):
        super().__init__(problem)
        self.problem = problem
        self.during = during


class NoPatientContext(SmartError):
    """The token response carries no ``patient``: the app was not launched in a patient's context."""


class AuthorizationResponseMismatch(SmartError):
    """The authorization response is not from the server this launch was sent to (RFC 9207 §2.4, RFC 9700 §4.4).

    ``problem``: ``"issuer-mismatch"`` (its ``iss`` names another server),
    ``"issuer-missing"`` (the server promised ``iss`` and sent none),
    ``"redirect-uri-mismatch"`` (it came back to another registration's redirect URI).
    No token request is made.
    """

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem
