"""Checking an outbound URL: one unambiguous origin, or a refusal.

A URL is accepted only when every parser involved agrees on where it points:
our own RFC 3986 §3 split (Appendix B regular expression), urllib3's
``parse_url`` (what the transport connects to), :func:`urllib.parse.urlsplit`
(what the rest of the app and authlib use) and the URL ``requests``'
``PreparedRequest`` would send. Inputs on which WHATWG URL parsers (browsers,
many proxies) and RFC 3986 parsers are known to differ are refused outright
rather than "fixed": backslashes (WHATWG reads ``\\`` as ``/`` in http(s)),
tabs/newlines (WHATWG strips them anywhere), leading/trailing C0 or space,
userinfo (RFC 3986 §3.2.1; the ``http://a@b/`` and ``http://a:1\\@b/`` tricks),
percent-encoded or non-canonical hosts (RFC 3986 §3.2.2 vs WHATWG host
parsing: ``%2e``, trailing dots, empty labels, IPv6 zone ids, IPv4 in
hex/octal/short forms that ``inet_aton`` and WHATWG accept), and fragments
(never sent, and the ``#@`` trick). Non-ASCII input is refused (IDN hosts must
be given in their ASCII ``xn--`` form).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from authlib.common.security import is_secure_transport
from requests.models import PreparedRequest
from urllib3.exceptions import LocationParseError
from urllib3.util import Url, parse_url

from .errors import RefusedTarget

DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]
"""An RFC 6454 origin: ``(scheme, host, port)``, scheme and host lower-case, default port filled in, IPv6 without brackets."""

# RFC 3986 Appendix B, with the authority made mandatory-or-absent explicitly.
_RFC3986 = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):(//([^/?#]*))?([^?#]*)(\?[^#]*)?(#.*)?$", re.S)
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
_REG_NAME = re.compile(r"^[a-z0-9_\-.]+$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_DOTTED_QUAD = re.compile(r"^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$")


@dataclass(frozen=True)
class ParsedTarget:
    """A checked http(s) URL.

    ``scheme`` and ``host`` lower-case (IPv6 without brackets, compressed form);
    ``port`` always set (default folded in); ``path`` as it will be sent (at least
    ``"/"``, invalid characters percent-encoded as urllib3 does); ``query``
    without ``?`` (``None`` when absent). No userinfo, no fragment.
    """

    scheme: str
    host: str
    port: int
    path: str
    query: str | None

    @property
    def origin(self) -> Origin:
        """``(scheme, host, port)``."""
        return self.scheme, self.host, self.port

    @property
    def origin_string(self) -> str:
        """``scheme://host[:port]`` (default port omitted, IPv6 in brackets): safe to log and to put in CSP."""
        return format_origin(self.origin)

    @property
    def url(self) -> str:
        """The URL exactly as it will be sent (normalised scheme, host and port)."""
        return self.origin_string + self.path + (f"?{self.query}" if self.query is not None else "")


def format_origin(origin: Origin) -> str:
    """``scheme://host[:port]`` of an origin tuple; IPv6 hosts in brackets, default ports omitted."""
    scheme, host, port = origin
    netloc = f"[{host}]" if ":" in host else host
    return f"{scheme}://{netloc}" if port == DEFAULT_PORTS.get(scheme) else f"{scheme}://{netloc}:{port}"


def _normalise_host(host: str) -> str:
    """The canonical form of an RFC 3986 §3.2.2 host, or :class:`RefusedTarget`."""
    if not host:
        raise RefusedTarget("no_host")
    if "%" in host:
        raise RefusedTarget("host_percent_encoded")  # also IPv6 zone ids (RFC 6874 "%25")
    if host.startswith("["):
        if not host.endswith("]"):
            raise RefusedTarget("host_invalid")
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise RefusedTarget("host_invalid") from None
        return address.compressed
    host = host.lower()
    if not _REG_NAME.match(host):
        raise RefusedTarget("host_invalid")
    if host.endswith("."):
        raise RefusedTarget("host_trailing_dot")
    labels = host.split(".")
    if "" in labels:
        raise RefusedTarget("host_empty_label")
    if len(host) > 253 or any(len(label) > 63 for label in labels):
        raise RefusedTarget("host_too_long")
    # WHATWG "ends in a number": the host is then an IPv4 address, possibly in
    # hex, octal or shortened form (so is it for glibc's inet_aton). Accept only
    # the canonical dotted quad.
    if _NUMERIC_LABEL.match(labels[-1]) and not _DOTTED_QUAD.match(host):
        raise RefusedTarget("host_ambiguous_ipv4")
    return host


def check_url(url: str, *, require_secure_transport: bool = True, allow_fragment: bool = False) -> ParsedTarget:
    """Parse ``url`` into a :class:`ParsedTarget` or raise :class:`RefusedTarget` (reason codes below).

    ``require_secure_transport``: refuse plain ``http`` except to loopback hosts
    (``"insecure_transport"``; the app's rule, authlib's ``is_secure_transport``,
    RFC 8252 §7.3). ``allow_fragment``: accept (and drop) one ``#fragment``;
    outbound requests never send one, so the client refuses them (``"fragment"``).

    Reason codes: ``not_a_string``, ``non_ascii``, ``control_or_whitespace``,
    ``backslash``, ``not_absolute``, ``scheme_not_http``, ``no_authority``,
    ``fragment``, ``userinfo``, ``port_invalid``, ``no_host``, ``host_invalid``,
    ``host_percent_encoded``, ``host_trailing_dot``, ``host_empty_label``,
    ``host_too_long``, ``host_ambiguous_ipv4``, ``dot_segment``, ``parsers_disagree``,
    ``insecure_transport``. The URL itself is never put in the error (it may
    hold a patient id); ``origin`` is set once the host is known.

    RFC 3986 §3 (components), §3.2 (authority), §5.2.4 (dot segments); WHATWG URL
    Standard §4.4 (basic URL parser) for the discrepancies refused here.
    """
    if not isinstance(url, str):
        raise RefusedTarget("not_a_string")
    if not url.isascii():
        raise RefusedTarget("non_ascii")
    if _CONTROL_OR_SPACE.search(url):
        raise RefusedTarget("control_or_whitespace")
    if "\\" in url:
        raise RefusedTarget("backslash")
    match = _RFC3986.match(url)
    if not match:
        raise RefusedTarget("not_absolute")
    scheme, has_authority, authority, raw_path, raw_query, fragment = match.groups()
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise RefusedTarget("scheme_not_http")
    if has_authority is None:
        raise RefusedTarget("no_authority")
    if fragment is not None and (not allow_fragment or "#" in fragment[1:]):
        raise RefusedTarget("fragment")
    if "@" in authority:
        raise RefusedTarget("userinfo")

    if authority.startswith("["):
        if "]" not in authority:
            raise RefusedTarget("host_invalid")
        host_text, _, rest = authority.partition("]")
        host_text += "]"
        if rest and not rest.startswith(":"):
            raise RefusedTarget("host_invalid")
        port_text = rest[1:] if rest else None
    else:
        host_text, colon, port_text = authority.partition(":")
        if not colon:
            port_text = None
        elif ":" in port_text:
            raise RefusedTarget("host_invalid")
    host = _normalise_host(host_text)
    if port_text is None:
        port = DEFAULT_PORTS[scheme]
    else:
        if not (port_text.isdigit() and 0 < len(port_text) <= 5 and 0 < int(port_text) <= 65535):
            raise RefusedTarget("port_invalid", origin=format_origin((scheme, host, DEFAULT_PORTS[scheme])))
        port = int(port_text)
    origin = (scheme, host, port)
    origin_text = format_origin(origin)

    for segment in raw_path.split("/"):
        if unquote(segment) in (".", ".."):
            raise RefusedTarget("dot_segment", origin=origin_text)

    # Every parser must agree with the split above.
    try:
        u3 = parse_url(url)
        split = urlsplit(url)
        split_port = split.port
    except (LocationParseError, ValueError):
        raise RefusedTarget("parsers_disagree", origin=origin_text) from None
    u3_host = (u3.host or "").lower()
    if u3_host.startswith("["):
        u3_host = _normalise_host(u3_host)
    split_host = split.hostname or ""
    if ":" in split_host:
        split_host = _normalise_host(f"[{split_host}]")
    if ((u3.scheme, u3_host, u3.port or DEFAULT_PORTS[scheme]) != origin or u3.auth is not None
            or (split.scheme.lower(), split_host, split_port or DEFAULT_PORTS[scheme]) != origin
            or split.username is not None or split.password is not None):
        raise RefusedTarget("parsers_disagree", origin=origin_text)

    netloc_host = f"[{host}]" if ":" in host else host
    rebuilt = Url(scheme=scheme, host=netloc_host, port=None if port == DEFAULT_PORTS[scheme] else port,
                  path=u3.path or "/", query=u3.query).url
    target = ParsedTarget(scheme=scheme, host=host, port=port, path=u3.path or "/", query=u3.query)
    prepared = PreparedRequest()
    try:
        prepared.prepare_url(rebuilt, None)
    except Exception:  # requests' InvalidURL / MissingSchema / LocationParseError
        raise RefusedTarget("parsers_disagree", origin=origin_text) from None
    sent = parse_url(prepared.url)
    sent_host = (sent.host or "").lower()
    if sent_host.startswith("["):
        sent_host = _normalise_host(sent_host)
    if (sent.scheme, sent_host, sent.port or DEFAULT_PORTS[scheme]) != origin or sent.auth is not None:
        raise RefusedTarget("parsers_disagree", origin=origin_text)
    if require_secure_transport and not is_secure_transport(target.url):
        raise RefusedTarget("insecure_transport", origin=origin_text)
    return target


def normalise_origin(value: str | tuple) -> Origin:
    """An origin from ``"scheme://host[:port]"`` (or any URL of it) or a ``(scheme, host, port)`` tuple.

    Raises :class:`RefusedTarget` as :func:`check_url` (transport security not
    required here: it is checked per request).
    """
    if isinstance(value, tuple):
        if len(value) != 3:
            raise RefusedTarget("not_an_origin")
        scheme, host, port = value
        value = format_origin((str(scheme).lower(), str(host), int(port)))
    return check_url(value, require_secure_transport=False).origin
