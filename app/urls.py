"""URL helpers shared by the SMART client, the FHIR access layer and the security checks.

Every URL is parsed by :func:`app.outbound.target.check_url`: urllib3's
``parse_url`` (what the transport connects to), cross-checked with
:func:`urllib.parse.urlsplit` and ``requests``' ``PreparedRequest``; URLs on
which parsers could disagree (backslashes, userinfo, control characters or
white space, percent-encoded or non-canonical hosts, IPv6 zone ids, several
``#``) raise :class:`~app.outbound.errors.RefusedTarget`, a ``ValueError``.
No URL is built by string concatenation of untrusted parts.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from app.outbound.errors import RefusedTarget
from app.outbound.target import DEFAULT_PORTS, Origin, ParsedTarget, check_url, format_origin

__all__ = ["origin_of", "origin_string", "same_origin", "iss_key", "base_dir", "check_url", "ParsedTarget"]

_DEFAULT_PORTS = DEFAULT_PORTS


#: distinct URLs whose parse is remembered per process (a parse is ~80 µs; the same few FHIR bases, viewers and
#: origins are asked for on every request). Only successful parses are kept (refusals are raised each time).
PARSE_CACHE_SIZE = 2048


def origin_of(url: str) -> Origin:
    """Return the RFC 6454 origin of an absolute URL as ``(scheme, host, port)``.

    Scheme and host are lower-cased (IPv6 without brackets); a missing port
    becomes the scheme's default. Raises ``ValueError``
    (:class:`~app.outbound.errors.RefusedTarget`) for a URL that is not
    absolute http(s) or is ambiguous (see module doc). Plain http to any host
    is accepted here: whether a request may be sent is the client's check.
    """
    if not isinstance(url, str):
        raise RefusedTarget("not_a_string")
    return _origin_of(url)


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _origin_of(url: str) -> Origin:
    return check_url(url, require_secure_transport=False, allow_fragment=True).origin


def origin_string(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, the form CSP source lists expect (IPv6 in brackets)."""
    return format_origin(origin_of(url))


def same_origin(a: str, b: str) -> bool:
    """True when both absolute URLs share scheme, host and port (RFC 6454 §5); ``False`` if either is refused."""
    try:
        return origin_of(a) == origin_of(b)
    except ValueError:
        return False


def iss_key(iss: str) -> tuple[str, str, int, str]:
    """Comparison key for a FHIR base URL (``iss``).

    ``(scheme, host, port, path)`` with the path's trailing slash removed and its
    case kept (paths are case-sensitive). Query strings, fragments and user
    info are not allowed in a FHIR base and raise ``ValueError``, as do the
    ambiguous URLs :func:`origin_of` refuses.
    SMART App Launch 2.2 §EHR Launch: the app must check ``iss`` against the
    servers it trusts before sending anything to it.
    """
    if not isinstance(iss, str) or iss != iss.strip():
        raise ValueError("a FHIR base URL has no surrounding white space")
    return _iss_key(iss)


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _iss_key(iss: str) -> tuple[str, str, int, str]:
    target = check_url(iss, require_secure_transport=False, allow_fragment=False)
    if target.query is not None:
        raise ValueError("a FHIR base URL has no query, fragment or user info")
    return target.scheme, target.host, target.port, urlsplit(iss).path.rstrip("/")


def base_dir(fhir_base_url: str) -> str:
    """The base URL with exactly one trailing slash.

    What fhirclient's FHIRServer needs, and what ``urljoin(base_dir(iss), "ImagingStudy?…")``
    needs to keep exactly one slash before the resource type (FHIR R4 §3.1.0.1.1 Service Base URL).
    """
    return fhir_base_url.rstrip("/") + "/"
