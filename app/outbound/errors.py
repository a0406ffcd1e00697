"""Typed failures of outbound exchanges: protocol facts, not clinician-facing sentences.

Every error raised by :mod:`app.outbound` derives from :class:`OutboundError`.
Each carries data (a reason code, a status, a limit, a phase) plus optional
context set by the client: ``kind`` (the exchange kind, e.g. ``"token"``),
``origin`` (``scheme://host[:port]`` of the target, never a path or query:
URLs may hold patient ids) and ``status`` (the upstream HTTP status when an
answer was received). Another layer turns them into pages.

Messages (``str(error)``) are compact ``Name(field=value, …)`` forms built only
from those fields, so they are safe to log.
"""

from __future__ import annotations


class OutboundError(Exception):
    """Base of every outbound failure.

    Keyword context (all optional, all safe to log): ``kind`` (exchange kind),
    ``origin`` (``scheme://host[:port]``), ``status`` (HTTP status of the
    upstream answer, when one was received).
    """

    fields: tuple[str, ...] = ()

    def __init__(self, *, kind: str | None = None, origin: str | None = None, status: int | None = None):
        self.kind = kind
        self.origin = origin
        self.status = status
        super().__init__(*(getattr(self, name) for name in self.fields))

    def with_context(self, *, kind: str | None = None, origin: str | None = None,
                     status: int | None = None) -> "OutboundError":
        """Fill in context that is still unset; returns ``self`` (for ``raise err.with_context(...)``)."""
        self.kind = self.kind or kind
        self.origin = self.origin or origin
        if self.status is None:
            self.status = status
        return self

    def __str__(self) -> str:
        parts = [f"{name}={getattr(self, name)!r}" for name in self.fields]
        parts += [f"{name}={value!r}" for name, value in
                  (("kind", self.kind), ("origin", self.origin), ("status", self.status))
                  if value is not None and name not in self.fields]
        return f"{type(self).__name__}({', '.join(parts)})"


class RefusedTarget(OutboundError, ValueError):
    """The URL was refused before any byte was sent.

    ``reason``: a code such as ``"backslash"``, ``"userinfo"``,
    ``"control_or_whitespace"``, ``"host_percent_encoded"``, ``"host_trailing_dot"``,
    ``"host_empty_label"``, ``"host_ambiguous_ipv4"``, ``"scheme_not_http"``,
    ``"insecure_transport"``, ``"fragment"``, ``"parsers_disagree"`` or
    ``"origin_not_allowed"`` (see :func:`app.outbound.target.check_url`).
    ``origin``: ``scheme://host[:port]`` when it could be parsed unambiguously, else ``None``.
    Also a ``ValueError``, so :mod:`app.urls` callers that catch ``ValueError`` keep working.
    """

    fields = ("reason",)

    def __init__(self, reason: str, **context):
        self.reason = reason
        super().__init__(**context)


class UnsafeHeader(OutboundError):
    """A request header was refused before connecting.

    ``name``: the header name (``None`` when the name itself is not an
    RFC 9110 §5.1 token); ``reason``: ``"crlf_or_nul"``, ``"control_or_non_ascii"``,
    ``"surrounding_whitespace"``, ``"invalid_name"`` or ``"bearer_not_b64token"``
    (RFC 6750 §2.1). The value is never included: it may be a token.
    """

    fields = ("name", "reason")

    def __init__(self, name: str | None, reason: str, **context):
        self.name = name
        self.reason = reason
        super().__init__(**context)


class RedirectRefused(OutboundError):
    """The upstream answered a 3xx and it was not followed (RFC 9700 §4.11, RFC 6749 §10.15 open redirectors).

    ``status``: the 3xx status; ``same_origin``: whether ``Location`` (resolved
    against the request URL) is on the request's origin (``False`` when absent
    or unparseable).
    """

    fields = ("status", "same_origin")

    def __init__(self, status: int, same_origin: bool, **context):
        self.same_origin = same_origin
        context.pop("status", None)
        super().__init__(status=status, **context)


class UpstreamTimeout(OutboundError):
    """No complete answer in time.

    ``phase``: ``"connect"`` (TCP/TLS connect timeout), ``"read"`` (no byte for
    ``read_timeout`` seconds) or ``"deadline"`` (the exchange's overall wall-clock
    deadline passed: connect, headers and body together).
    """

    fields = ("phase",)

    def __init__(self, phase: str, **context):
        self.phase = phase
        super().__init__(**context)


class UpstreamUnreachable(OutboundError):
    """No connection could be made or kept.

    ``reason``: ``"connection_refused"``, ``"name_resolution"``, ``"tls"``,
    ``"connection_lost"`` (closed before an answer) or ``"connection_failed"``.
    """

    fields = ("reason",)

    def __init__(self, reason: str = "connection_failed", **context):
        self.reason = reason
        super().__init__(**context)


class ResponseTooLarge(OutboundError):
    """The answer's body exceeds the exchange's cap.

    ``limit_bytes``: the cap (applied to bytes on the wire and to decoded bytes);
    ``declared_bytes``: the ``Content-Length`` when it alone caused the refusal
    (nothing of the body was read), else ``None``.
    """

    fields = ("limit_bytes", "declared_bytes")

    def __init__(self, limit_bytes: int, declared_bytes: int | None = None, **context):
        self.limit_bytes = limit_bytes
        self.declared_bytes = declared_bytes
        super().__init__(**context)


class MalformedResponse(OutboundError):
    """The answer breaks HTTP framing or encoding rules.

    ``reason``: ``"content_length"`` (invalid or conflicting), ``"content_encoding"``
    (not identity/gzip/deflate, or stacked), ``"bad_encoding"`` (corrupt gzip/deflate),
    ``"truncated_encoding"``, ``"data_after_encoding"`` or ``"incomplete_body"``.
    """

    fields = ("reason",)

    def __init__(self, reason: str, **context):
        self.reason = reason
        super().__init__(**context)


class UnexpectedContentType(OutboundError):
    """JSON was expected but the media type is not ``application/json`` or ``*/*+json`` (RFC 6839 §3.1).

    ``media_type``: the lower-cased media type without parameters (``None`` when absent).
    """

    fields = ("media_type",)

    def __init__(self, media_type: str | None, **context):
        self.media_type = media_type
        super().__init__(**context)


class InvalidJson(OutboundError):
    """The body is not acceptable JSON (RFC 8259).

    ``reason``: ``"not_utf8"``, ``"syntax"``, ``"non_finite_number"`` (NaN,
    Infinity, or a float overflowing to infinity), ``"number_too_long"``,
    ``"duplicate_key"`` or ``"not_an_object"``; ``position``: character offset
    of a syntax error, else ``None``.
    """

    fields = ("reason", "position")

    def __init__(self, reason: str, position: int | None = None, **context):
        self.reason = reason
        self.position = position
        super().__init__(**context)


class JsonTooDeep(InvalidJson):
    """The JSON nests arrays/objects deeper than ``limit`` levels (checked before decoding)."""

    fields = ("limit",)

    def __init__(self, limit: int, **context):
        self.limit = limit
        super().__init__("too_deep", **context)
