"""The one guarded way out: every request carrying a secret, or whose answer is trusted, goes through here.

:class:`OutboundClient` sends a request only when

1. the URL passes :func:`~app.outbound.target.check_url` (one unambiguous
   origin; plain http only to loopback),
2. its origin is on the exchange's allowlist (:class:`~app.outbound.policy.ExchangePolicy`),
3. no header value could split the request (CR, LF, NUL, other controls) and a
   Bearer token is an RFC 6750 §2.1 ``b64token``,

and then it never follows a redirect (RFC 9700 §4.11 open redirectors, §4.4
mix-up: a code, token or client credential never leaves for a ``Location``),
enforces connect and read timeouts and an overall deadline, and reads the body
as a stream under the exchange's byte cap (wire and decoded; ``Content-Length``
honoured and distrusted). The answer is an :class:`UpstreamResponse`, whose
JSON is decoded by :func:`~app.outbound.jsonsafe.decode_json`.

authlib's token calls go through the same guard with :class:`GuardedOAuth2Session`
(``client.oauth_session(policy, ...)``), fhirclient-style ``get`` calls with
:class:`GuardedGetSession` (``client.requests_session(policy, auth)``).

No cookie jar, no ``.netrc``, no proxies from the environment: nothing but what
the caller passes is sent. One client per process: its connection pools are
shared by every exchange and every session it creates.
"""

from __future__ import annotations

import http
import logging
import ssl
import time
import zlib
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import urljoin

import requests
from authlib.integrations.requests_client import OAuth2Session
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.exceptions import NameResolutionError, NewConnectionError
from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeout

from .errors import (MalformedResponse, OutboundError, RedirectRefused, RefusedTarget, ResponseTooLarge,
                     UnsafeHeader, UpstreamTimeout, UpstreamUnreachable)
from .headers import ACCEPT_ENCODING, check_headers, carries_credentials
from .observe import REQUEST_ID, observe
from .jsonsafe import DEFAULT_MAX_DEPTH, decode_json, media_type, require_json_media_type
from .policy import DEFAULT_LIMITS, MAX_SAME_ORIGIN_REDIRECTS, ExchangeLimits, ExchangePolicy, make_policy
from .target import ParsedTarget, check_url
from .transport import WATCHDOG, Exchange, GuardedAdapter, current_exchange

log = logging.getLogger(__name__)

USER_AGENT = "imaging-smart-app/0.1 (+SMART App Launch 2.2; IHE RAD-106)"
READ_CHUNK = 64 * 1024
CONNECT_RETRIES = 2          # GET/HEAD only, connection failures only, within the deadline
RETRY_BACKOFF_SECONDS = 0.05
_IDEMPOTENT = frozenset({"GET", "HEAD"})


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive response headers; repeated fields joined with ``", "`` (RFC 9110 §5.3)."""

    __slots__ = ("_fields",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()):
        fields: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            fields[key] = (fields[key][0], f"{fields[key][1]}, {value}") if key in fields else (name, value)
        self._fields = fields

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass(frozen=True)
class UpstreamResponse:
    """A complete upstream answer.

    ``status``: HTTP status; ``headers``: :class:`Headers`; ``content``: the
    decoded body (gzip/deflate removed), at most the policy's ``max_bytes``;
    ``url``: the URL requested (after any followed same-origin redirect), as
    sent; ``kind``: the exchange kind.
    """

    status: int
    headers: Headers
    content: bytes
    url: str
    kind: str = ""

    @property
    def media_type(self) -> str | None:
        """Lower-cased ``type/subtype`` of ``Content-Type`` (``None`` when absent)."""
        return media_type(self.headers.get("Content-Type"))

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` of :attr:`url`."""
        return check_url(self.url, require_secure_transport=False).origin_string

    def _context(self) -> dict:
        return {"kind": self.kind, "origin": self.origin, "status": self.status}

    def json(self, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
        """The body as JSON: the media type must be ``application/json`` or ``*/*+json``.

        Raises :class:`~app.outbound.errors.UnexpectedContentType`,
        :class:`~app.outbound.errors.InvalidJson`, :class:`~app.outbound.errors.JsonTooDeep`.
        """
        require_json_media_type(self.headers.get("Content-Type"), **self._context())
        return decode_json(self.content, max_depth=max_depth, **self._context())

    def json_object(self, *, max_depth: int = DEFAULT_MAX_DEPTH) -> dict:
        """Like :meth:`json`, and the top level must be an object (``InvalidJson("not_an_object")``)."""
        require_json_media_type(self.headers.get("Content-Type"), **self._context())
        return decode_json(self.content, max_depth=max_depth, require_object=True, **self._context())

    def to_requests_response(self, request: requests.PreparedRequest | None = None) -> requests.Response:
        """A ``requests.Response`` view (for authlib and fhirclient) whose ``.json()`` is the safe decoder."""
        response = _GuardedRequestsResponse()
        response.upstream = self
        response.status_code = self.status
        response.headers = CaseInsensitiveDict(dict(self.headers.items()))
        response._content = self.content
        response._content_consumed = True
        response.url = self.url
        response.request = request
        response.encoding = get_encoding_from_headers(response.headers)
        try:
            response.reason = http.HTTPStatus(self.status).phrase
        except ValueError:
            response.reason = ""
        return response


class _GuardedRequestsResponse(requests.Response):
    """``requests.Response`` whose ``json()`` is :meth:`UpstreamResponse.json` (typed errors, depth cap, no NaN)."""

    upstream: UpstreamResponse

    def json(self, **kwargs):
        return self.upstream.json()


class _BoundedDecoder:
    """Streams a body through its ``Content-Encoding`` (identity, gzip, deflate) with the decoded size capped.

    zlib is never asked for more than ``cap - decoded + 1`` bytes at a time, so
    a gzip bomb is refused after at most ``cap + 1`` decoded bytes are held.
    """

    def __init__(self, encoding: str | None, cap: int, context: dict):
        self.encoding = encoding
        self.cap = cap
        self.context = context
        self.size = 0
        self.parts: list[bytes] = []
        self._first = True
        self._pending = b""
        self._obj = self._new()

    def _new(self, raw_deflate: bool = False):
        if self.encoding == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self.encoding == "deflate":
            return zlib.decompressobj(-zlib.MAX_WBITS if raw_deflate else zlib.MAX_WBITS)
        return None

    def _append(self, data: bytes) -> None:
        if data:
            self.size += len(data)
            if self.size > self.cap:
                raise ResponseTooLarge(self.cap, **self.context)
            self.parts.append(data)

    def feed(self, data: bytes) -> None:
        """Decode ``data`` (raises :class:`ResponseTooLarge`, :class:`MalformedResponse`)."""
        if self._obj is None:
            self._append(data)
            return
        buf = data
        while buf:
            if self._obj.eof:
                if self.encoding != "gzip":
                    raise MalformedResponse("data_after_encoding", **self.context)
                self._obj = self._new()  # RFC 1952 §2.2: a gzip file may hold several members
            try:
                out = self._obj.decompress(buf, self.cap - self.size + 1)
            except zlib.error:
                if self.encoding == "deflate" and self._first:
                    # Servers send raw deflate (RFC 1951) for "deflate", which means zlib (RFC 1950).
                    self._first = False
                    self._obj = self._new(raw_deflate=True)
                    continue
                raise MalformedResponse("bad_encoding", **self.context) from None
            self._first = False
            self._append(out)
            buf = self._obj.unconsumed_tail or (self._obj.unused_data if self._obj.eof else b"")

    def finish(self) -> bytes:
        """The whole decoded body (raises :class:`MalformedResponse` for a truncated gzip/deflate stream)."""
        if self._obj is not None:
            if not self._obj.eof:
                if self.size == 0 and self._first:
                    return b""  # empty body with a Content-Encoding header
                raise MalformedResponse("truncated_encoding", **self.context)
            self._append(self._obj.flush())
        return b"".join(self.parts)


def _content_length(headers: Headers, context: dict) -> int | None:
    value = headers.get("Content-Length")
    if value is None:
        return None
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise MalformedResponse("content_length", **context)
    return int(values.pop())


def _content_encoding(headers: Headers, context: dict) -> str | None:
    value = (headers.get("Content-Encoding") or "").strip().lower()
    codings = [c.strip() for c in value.split(",") if c.strip() and c.strip() != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in ("gzip", "x-gzip", "deflate"):
        raise MalformedResponse("content_encoding", **context)
    return "gzip" if codings[0] == "x-gzip" else codings[0]


def _unreachable_reason(exc: BaseException) -> str:
    """``tls``, ``name_resolution``, ``connection_refused``, ``connection_lost`` or ``connection_failed``."""
    seen: set[int] = set()
    stack: list = [exc]
    new_connection = False
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (requests.exceptions.SSLError, ssl.SSLError)):
            return "tls"
        if isinstance(current, NameResolutionError):
            return "name_resolution"
        if isinstance(current, ConnectionRefusedError):
            return "connection_refused"
        new_connection = new_connection or isinstance(current, NewConnectionError)
        stack.extend([getattr(current, "reason", None), current.__cause__, current.__context__,
                      *[a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]])
    return "connection_failed" if new_connection else "connection_lost"


class OutboundClient:
    """The process's guarded HTTP client (create one at start-up; it is thread-safe).

    ``connect_timeout`` / ``read_timeout``: seconds (a read timeout is the
    longest silence tolerated between bytes; the policy's deadline bounds the
    whole exchange); ``limits``: per-kind :class:`~app.outbound.policy.ExchangeLimits`
    overriding :data:`~app.outbound.policy.DEFAULT_LIMITS`; ``pool_size``:
    keep-alive connections per origin; ``pool_origins``: origins with a pool kept;
    ``ca_bundle``: a PEM file of the certificate authorities to trust instead of
    certifi's (a site behind a private CA); certificates are always verified.
    """

    def __init__(self, connect_timeout: float = 3.05, read_timeout: float = 20.0, *,
                 limits: Mapping[str, ExchangeLimits] | None = None, pool_size: int = 16,
                 pool_origins: int = 8, user_agent: str = USER_AGENT, ca_bundle: str | None = None):
        self.connect_timeout = connect_timeout
        self.ca_bundle = ca_bundle
        self.read_timeout = read_timeout
        self.limits: Mapping[str, ExchangeLimits] = {**DEFAULT_LIMITS, **(limits or {})}
        self.user_agent = user_agent
        self.adapter = GuardedAdapter(pool_connections=pool_origins, pool_maxsize=pool_size)

    # -- policies and sessions ------------------------------------------------------------

    def policy(self, kind: str, *origins, max_bytes: int | None = None, deadline_seconds: float | None = None,
               follow_same_origin_redirects: bool | None = None) -> ExchangePolicy:
        """A policy of ``kind`` (its limits from :attr:`limits`) allowing ``origins``.

        ``origins``: ``(scheme, host, port)`` tuples (``app.urls.origin_of(iss)``)
        or ``scheme://host[:port]`` strings. E.g. ``client.policy("fhir", origin_of(iss))``.
        Raises ``KeyError`` for an unknown kind.
        """
        return make_policy(self.limits, kind, origins, max_bytes=max_bytes, deadline_seconds=deadline_seconds,
                           follow_same_origin_redirects=follow_same_origin_redirects)

    def oauth_session(self, policy: ExchangePolicy, **authlib_kwargs) -> "GuardedOAuth2Session":
        """An authlib ``OAuth2Session`` (code exchange, refresh) whose every request goes through this client.

        ``authlib_kwargs``: ``OAuth2Session``'s (``client_id``, ``client_secret``,
        ``token_endpoint_auth_method``, ``redirect_uri``, ``code_challenge_method``, ...).
        """
        return GuardedOAuth2Session(outbound=self, policy=policy, **authlib_kwargs)

    def requests_session(self, policy: ExchangePolicy, auth=None) -> "GuardedGetSession":
        """A ``get(url, headers=...)`` object (what fhirclient's ``FHIRServer.session`` needs)."""
        return GuardedGetSession(self, policy, auth)

    def close(self) -> None:
        """Close the pooled connections."""
        self.adapter.close()

    # -- requests ------------------------------------------------------------------------

    def get(self, url: str, *, policy: ExchangePolicy, headers: Mapping[str, str] | None = None,
            auth=None) -> UpstreamResponse:
        """``request("GET", ...)``."""
        return self.request("GET", url, policy=policy, headers=headers, auth=auth)

    def post(self, url: str, *, policy: ExchangePolicy, headers: Mapping[str, str] | None = None,
             data=None, auth=None) -> UpstreamResponse:
        """``request("POST", ...)``."""
        return self.request("POST", url, policy=policy, headers=headers, data=data, auth=auth)

    def request(self, method: str, url: str, *, policy: ExchangePolicy, headers: Mapping[str, str] | None = None,
                data=None, auth=None) -> UpstreamResponse:
        """Send one request under ``policy`` and read the whole answer.

        ``headers``: extra request headers (checked, see module doc); ``data``:
        body (bytes, str or a dict form-encoded); ``auth``: a ``requests`` auth
        callable (e.g. authlib's ``OAuth2Auth`` for a Bearer token).

        Any status is returned (4xx/5xx included) except 3xx. Raises
        :class:`RefusedTarget`, :class:`UnsafeHeader` (nothing sent),
        :class:`RedirectRefused`, :class:`UpstreamTimeout`,
        :class:`UpstreamUnreachable`, :class:`ResponseTooLarge`, :class:`MalformedResponse`.
        """
        target = self._check_target(url, policy)
        check_headers(headers or {}, kind=policy.kind, origin=target.origin_string)
        prepared = requests.PreparedRequest()
        prepared.prepare(method=method.upper(), url=target.url, headers=dict(headers or {}), data=data,
                         auth=auth)
        return self.send_prepared(prepared, policy)

    def _check_target(self, url: str, policy: ExchangePolicy) -> ParsedTarget:
        try:
            target = check_url(url)
        except RefusedTarget as exc:
            raise exc.with_context(kind=policy.kind) from None
        if not policy.allows(target.origin):
            raise RefusedTarget("origin_not_allowed", kind=policy.kind, origin=target.origin_string)
        return target

    def send_prepared(self, prepared: requests.PreparedRequest, policy: ExchangePolicy) -> UpstreamResponse:
        """Send a ``requests.PreparedRequest`` (auth already applied) under ``policy``; see :meth:`request`.

        The URL and headers are checked again here, after auth hooks ran (an
        auth hook may add a token to the URL or a header).
        """
        target = self._check_target(prepared.url, policy)
        prepared.url = target.url
        prepared.headers["User-Agent"] = prepared.headers.get("User-Agent") or self.user_agent
        prepared.headers["Accept-Encoding"] = ACCEPT_ENCODING  # the only codings decoded (and capped)
        request_id = REQUEST_ID.get()
        if request_id and "X-Request-ID" not in prepared.headers:
            prepared.headers["X-Request-ID"] = request_id
        check_headers(prepared.headers, kind=policy.kind, origin=target.origin_string)
        started = time.monotonic()
        outcome = "error"
        exchange = Exchange(started + policy.deadline_seconds)
        WATCHDOG.arm(exchange)
        token = current_exchange.set(exchange)
        try:
            redirects = 0
            while True:
                response = self._send_once(prepared, policy, target, exchange)
                status = response.status_code
                if not 300 <= status < 400:
                    answer = self._read(response, policy, target, exchange)
                    outcome = str(answer.status)
                    return answer
                location, same = self._location(response, target)
                _discard(response)
                follow = (policy.follow_same_origin_redirects and same and status in (301, 302, 303, 307, 308)
                          and prepared.method in _IDEMPOTENT and not carries_credentials(prepared)
                          and redirects < MAX_SAME_ORIGIN_REDIRECTS)
                if not follow:
                    raise RedirectRefused(status, same, kind=policy.kind, origin=target.origin_string)
                redirects += 1
                target = self._check_target(location, policy)
                prepared = prepared.copy()
                prepared.url = target.url
        except OutboundError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            current_exchange.reset(token)
            exchange.finish()
            observe(policy.kind, time.monotonic() - started, outcome)

    @staticmethod
    def _location(response: requests.Response, target: ParsedTarget) -> tuple[str | None, bool]:
        location = response.headers.get("Location")
        if not location:
            return None, False
        try:
            resolved = check_url(urljoin(target.url, location))
        except (RefusedTarget, ValueError):
            return None, False
        return resolved.url, resolved.origin == target.origin

    def _timeouts(self, exchange: Exchange, context: dict) -> tuple[float, float]:
        remaining = exchange.remaining()
        if remaining <= 0:
            raise UpstreamTimeout("deadline", **context)
        return min(self.connect_timeout, remaining), min(self.read_timeout, remaining)

    def _send_once(self, prepared: requests.PreparedRequest, policy: ExchangePolicy, target: ParsedTarget,
                   exchange: Exchange) -> requests.Response:
        context = {"kind": policy.kind, "origin": target.origin_string}
        attempt = 0
        while True:
            try:
                return self.adapter.send(prepared, stream=True, timeout=self._timeouts(exchange, context),
                                         verify=self.ca_bundle or True, cert=None, proxies={})
            except requests.exceptions.ConnectTimeout:
                raise UpstreamTimeout("deadline" if exchange.expired else "connect", **context) from None
            except requests.exceptions.ReadTimeout:
                phase = "deadline" if exchange.expired or exchange.remaining() <= 0.005 else "read"
                raise UpstreamTimeout(phase, **context) from None
            except requests.exceptions.ConnectionError as exc:
                if exchange.expired or exchange.remaining() <= 0:
                    raise UpstreamTimeout("deadline", **context) from None
                reason = _unreachable_reason(exc)
                if (prepared.method in _IDEMPOTENT and attempt < CONNECT_RETRIES and reason != "tls"
                        and exchange.remaining() > RETRY_BACKOFF_SECONDS):
                    attempt += 1
                    time.sleep(RETRY_BACKOFF_SECONDS * attempt)
                    continue
                raise UpstreamUnreachable(reason, **context) from None
            except requests.exceptions.RequestException:
                if exchange.expired:
                    raise UpstreamTimeout("deadline", **context) from None
                raise UpstreamUnreachable("connection_failed", **context) from None

    def _read(self, response: requests.Response, policy: ExchangePolicy, target: ParsedTarget,
              exchange: Exchange) -> UpstreamResponse:
        raw = response.raw
        headers = Headers(raw.headers.items())
        context = {"kind": policy.kind, "origin": target.origin_string, "status": response.status_code}
        complete = False
        try:
            declared = _content_length(headers, context)
            if declared is not None and declared > policy.max_bytes:
                raise ResponseTooLarge(policy.max_bytes, declared, **context)
            decoder = _BoundedDecoder(_content_encoding(headers, context), policy.max_bytes, context)
            received = 0
            while True:
                remaining = exchange.remaining()
                if remaining <= 0 or exchange.expired:
                    raise UpstreamTimeout("deadline", **context)
                if exchange.sock is not None:
                    try:
                        exchange.sock.settimeout(min(self.read_timeout, remaining))
                    except OSError:
                        pass
                try:
                    data = raw.read1(READ_CHUNK, decode_content=False)
                except Urllib3ReadTimeout:
                    expired = exchange.expired or exchange.remaining() <= 0.005
                    raise UpstreamTimeout("deadline" if expired else "read", **context) from None
                except (Urllib3HTTPError, OSError):
                    if exchange.expired:
                        raise UpstreamTimeout("deadline", **context) from None
                    raise MalformedResponse("incomplete_body", **context) from None
                if not data:
                    break
                received += len(data)
                if received > policy.max_bytes:
                    raise ResponseTooLarge(policy.max_bytes, **context)
                decoder.feed(data)
            if exchange.expired:  # EOF caused by the watchdog's shutdown, not by the server
                raise UpstreamTimeout("deadline", **context)
            if declared is not None and received != declared:
                raise MalformedResponse("incomplete_body", **context)
            content = decoder.finish()
            complete = True
        finally:
            if complete:
                raw.release_conn()  # back to the pool (keep-alive)
            else:
                _discard(response)
        return UpstreamResponse(status=response.status_code, headers=headers, content=content,
                                url=target.url, kind=policy.kind)


def _discard(response: requests.Response) -> None:
    """Close the connection of an answer not read to its end (never returned to the pool half-read)."""
    try:
        response.raw.close()
        response.raw.release_conn()
    except Exception:  # pragma: no cover - closing is best effort
        pass


class GuardedOAuth2Session(OAuth2Session):
    """authlib's ``OAuth2Session`` whose requests go through an :class:`OutboundClient` under one policy.

    ``fetch_token`` (code exchange, RFC 6749 §4.1.3) and ``refresh_token``
    (§6) POST through :meth:`OutboundClient.send_prepared`: the token
    endpoint's origin must be on ``policy``, redirects are refused (the code and
    ``code_verifier`` are never re-posted to a ``Location``; RFC 9700 §4.11,
    RFC 6749 §10.6), the body is capped and its JSON safely decoded (errors
    are :mod:`app.outbound.errors`, raised through authlib unchanged). No
    cookies kept, no ``.netrc``, no environment proxies. Uses the client's
    shared pools; closing the session does not close them.
    """

    def __init__(self, *, outbound: OutboundClient, policy: ExchangePolicy, **kwargs):
        super().__init__(**kwargs)
        self.trust_env = False
        self.outbound = outbound
        self.policy = policy
        self.headers["User-Agent"] = outbound.user_agent

    def send(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:  # noqa: D401 - requests API
        """Send through the guard (``allow_redirects``, ``timeout``, ``proxies``, ``verify`` are ignored)."""
        upstream = self.outbound.send_prepared(request, self.policy)
        return upstream.to_requests_response(request)


class GuardedGetSession:
    """The ``session`` object fhirclient's ``FHIRServer`` calls ``get(url, headers=...)`` on, guarded.

    Returns a ``requests.Response`` view of :class:`UpstreamResponse` (its
    ``json()`` is the safe decoder); raises :mod:`app.outbound.errors`.
    """

    def __init__(self, client: OutboundClient, policy: ExchangePolicy, auth=None):
        self.client = client
        self.policy = policy
        self.auth = auth

    def get(self, url: str, headers: Mapping[str, str] | None = None, **_ignored) -> requests.Response:
        """GET ``url`` with ``headers`` and the session's ``auth``."""
        prepared = requests.PreparedRequest()
        target = self.client._check_target(url, self.policy)
        check_headers(headers or {}, kind=self.policy.kind, origin=target.origin_string)
        prepared.prepare(method="GET", url=target.url, headers=dict(headers or {}), auth=self.auth)
        return self.client.send_prepared(prepared, self.policy).to_requests_response(prepared)


__all__ = ["Headers", "UpstreamResponse", "OutboundClient", "GuardedOAuth2Session", "GuardedGetSession",
           "OutboundError"]
