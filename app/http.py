"""Outbound HTTP at the ground of the app: one pooled ``requests`` session with timeouts, and transport facts.

Every call the app makes to an EHR goes through :class:`OutboundSession`, so
none can hang: each request gets a ``(connect, read)`` timeout in seconds
unless the caller passes a tighter one. GETs are retried twice on connection
failures only (never on an HTTP status, so an EHR error is reported as it is;
read errors are raised at once). Redirects are never followed here: a secret
never follows a redirect to somewhere else.

Transport failures are raised as the facts below (:class:`UpstreamTimeout`,
:class:`UpstreamUnreachable`), with the ``kind`` of exchange they happened in
(``"discovery"``, ``"token"``, ``"fhir"``); the web layer words them.
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

USER_AGENT = "imaging-smart-app/0.1 (+SMART App Launch 2.2; IHE RAD-106)"
JSON_ACCEPT = "application/json, application/fhir+json;q=0.9"
FHIR_ACCEPT = "application/fhir+json, application/json;q=0.9"


class OutboundError(Exception):
    """A transport-level failure of one outbound exchange; ``kind`` names the exchange."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class UpstreamTimeout(OutboundError):
    """The upstream server did not answer in time (connect or read timeout)."""


class UpstreamUnreachable(OutboundError):
    """No connection could be made (refused, DNS, TLS, reset); ``cause`` is the exception class name."""

    def __init__(self, kind: str, cause: str = ""):
        super().__init__(kind)
        self.cause = cause


def transport_error(kind: str, exc: requests.RequestException) -> OutboundError:
    """The transport fact for a ``requests`` exception raised during a ``kind`` exchange."""
    if isinstance(exc, requests.Timeout):
        return UpstreamTimeout(kind)
    return UpstreamUnreachable(kind, type(exc).__name__)


class OutboundSession(requests.Session):
    """A ``requests.Session`` whose every request has a timeout and never follows a redirect.

    ``timeout``: ``(connect_seconds, read_seconds)``. Connection pool of
    ``pool_size`` per host (concurrent FHIR reads of one launch and many
    launches of one worker share it).
    """

    def __init__(self, timeout: tuple[float, float], pool_size: int = 16):
        super().__init__()
        self.default_timeout = timeout
        retry = Retry(total=2, connect=2, read=False, status=0, other=0, redirect=0,
                      backoff_factor=0.05, allowed_methods=frozenset({"GET"}), raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry, pool_connections=8, pool_maxsize=pool_size)
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self.headers["User-Agent"] = USER_AGENT

    def request(self, method, url, *args, **kwargs):  # noqa: D401 - requests API
        """``requests.Session.request`` with the default timeout and no redirects."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        kwargs["allow_redirects"] = False
        return super().request(method, url, *args, **kwargs)


def is_json_content_type(content_type: str | None) -> bool:
    """True for ``application/json``, ``application/fhir+json`` and other ``+json`` media types."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def json_object(response: requests.Response | None) -> dict | None:
    """The response body as a JSON object, or ``None`` (no response, not a JSON media type, not an object)."""
    if response is None or not is_json_content_type(response.headers.get("Content-Type")):
        return None
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None
