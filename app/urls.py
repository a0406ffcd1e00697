"""URL helpers shared by the SMART client, the FHIR access layer and the security checks.

Everything here parses with :mod:`urllib.parse`; no URL is built by string
concatenation of untrusted parts.
"""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int]:
    """Return the RFC 6454 origin of an absolute URL as ``(scheme, host, port)``.

    Scheme and host are lower-cased; a missing port becomes the scheme's
    default. Raises ``ValueError`` for a URL that is not absolute http(s).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("not an absolute http(s) URL")
    port = parts.port or _DEFAULT_PORTS[scheme]
    return scheme, parts.hostname.lower(), port


def origin_string(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, the form CSP source lists expect."""
    scheme, host, port = origin_of(url)
    if port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def same_origin(a: str, b: str) -> bool:
    """True when both absolute URLs share scheme, host and port (RFC 6454 §5)."""
    try:
        return origin_of(a) == origin_of(b)
    except ValueError:
        return False


def iss_key(iss: str) -> tuple[str, str, int, str]:
    """Comparison key for a FHIR base URL (``iss``).

    ``(scheme, host, port, path)`` with the path's trailing slash removed and its
    case kept (paths are case-sensitive). Query strings, fragments and user
    info are not allowed in a FHIR base and raise ``ValueError``.
    SMART App Launch 2.2 §EHR Launch: the app must check ``iss`` against the
    servers it trusts before sending anything to it.
    """
    if iss != iss.strip():
        raise ValueError("a FHIR base URL has no surrounding white space")
    parts = urlsplit(iss)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("a FHIR base URL has no query, fragment or user info")
    scheme, host, port = origin_of(iss)
    return scheme, host, port, parts.path.rstrip("/")


def base_dir(fhir_base_url: str) -> str:
    """The base URL with exactly one trailing slash.

    What fhirclient's FHIRServer needs, and what ``urljoin(base_dir(iss), "ImagingStudy?…")``
    needs to keep exactly one slash before the resource type (FHIR R4 §3.1.0.1.1 Service Base URL).
    """
    return fhir_base_url.rstrip("/") + "/"
