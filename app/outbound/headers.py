"""Request header checks: nothing that could split or smuggle a request leaves the app.

A hostile EHR chooses the access token it issues; a token holding CR LF would
inject headers (or a second request) if sent as is. ``requests`` checks the
headers a caller passes but not those an auth hook adds (authlib's
``OAuth2Auth`` sets ``Authorization`` after that check), and ``http.client``
allows obs-fold (``\\r\\n `` continuation). :func:`check_headers` runs on the
final prepared headers, before any connection is opened.
"""

from __future__ import annotations

import re
from typing import Mapping

import requests

from .errors import UnsafeHeader

ACCEPT_ENCODING = "gzip, deflate"
"""The only content codings the client decodes (and caps); sent on every request."""

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z\-]+$")            # RFC 9110 §5.6.2 token
_FIELD_VALUE = re.compile(r"^[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*$|^$")  # RFC 9110 §5.5, ASCII only, no obs-fold
_B64TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")                  # RFC 6750 §2.1
_CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")


def check_headers(headers: Mapping, **context) -> None:
    """Raise :class:`UnsafeHeader` for the first unsafe header of ``headers`` (``str`` or ``bytes`` names/values).

    Refused: names that are not RFC 9110 tokens (``invalid_name``); CR, LF or
    NUL in a value (``crlf_or_nul``); other control characters or non-ASCII
    (``control_or_non_ascii``); leading/trailing white space
    (``surrounding_whitespace``); an ``Authorization: Bearer`` credential that
    is not an RFC 6750 §2.1 ``b64token`` (``bearer_not_b64token``).
    ``context``: ``kind``/``origin`` put on the error.
    """
    for raw_name, raw_value in headers.items():
        name = raw_name.decode("latin-1") if isinstance(raw_name, bytes) else str(raw_name)
        if not _TOKEN.match(name):
            raise UnsafeHeader(None, "invalid_name", **context)
        if raw_value is None:
            continue
        value = raw_value.decode("latin-1") if isinstance(raw_value, bytes) else str(raw_value)
        if any(c in value for c in "\r\n\0"):
            raise UnsafeHeader(name, "crlf_or_nul", **context)
        if value != value.strip(" \t"):
            raise UnsafeHeader(name, "surrounding_whitespace", **context)
        if not _FIELD_VALUE.match(value):
            raise UnsafeHeader(name, "control_or_non_ascii", **context)
        if name.lower() == "authorization":
            scheme, _, credentials = value.partition(" ")
            if scheme.lower() == "bearer" and not _B64TOKEN.match(credentials):
                raise UnsafeHeader(name, "bearer_not_b64token", **context)


def carries_credentials(prepared: requests.PreparedRequest) -> bool:
    """True when the request holds a secret or a body: ``Authorization``, ``Cookie``, ``Proxy-Authorization``, any body.

    Such a request never follows a redirect, same-origin or not.
    """
    if prepared.body:
        return True
    return any(prepared.headers.get(name) for name in _CREDENTIAL_HEADERS)
