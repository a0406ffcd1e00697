"""Per-exchange policies: where a request may go, how much it may read, how long it may take.

The default limits of every kind of exchange live in :data:`DEFAULT_LIMITS`
(one place); :class:`~app.outbound.client.OutboundClient` takes overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Mapping

from .target import Origin, format_origin, normalise_origin

KiB = 1024
MiB = 1024 * KiB

MAX_SAME_ORIGIN_REDIRECTS = 3
"""How many same-origin redirects an opted-in exchange may follow."""


@dataclass(frozen=True)
class ExchangeLimits:
    """Defaults for one kind of exchange.

    ``max_bytes``: body cap, on the wire and decoded (bytes); ``deadline_seconds``:
    wall clock for the whole exchange (connect, headers, body, any followed
    redirect); ``follow_same_origin_redirects``: the default of the policy's flag.
    """

    max_bytes: int
    deadline_seconds: float
    follow_same_origin_redirects: bool = False


DEFAULT_LIMITS: Mapping[str, ExchangeLimits] = MappingProxyType({
    # SMART .well-known/smart-configuration and CapabilityStatement (metadata).
    "discovery": ExchangeLimits(max_bytes=256 * KiB, deadline_seconds=10.0, follow_same_origin_redirects=True),
    # Code exchange and refresh (RFC 6749 §4.1.3, §6).
    "token": ExchangeLimits(max_bytes=64 * KiB, deadline_seconds=15.0),
    # FHIR reads and search pages (Bundles of up to _count 200+ resources).
    "fhir": ExchangeLimits(max_bytes=8 * MiB, deadline_seconds=30.0),
    # Binary / thumbnails.
    "binary": ExchangeLimits(max_bytes=2 * MiB, deadline_seconds=20.0),
    # The EHR's smart_style_url document (SMART 2.2 §Styling): a few dozen short values; cosmetic, so short.
    "style": ExchangeLimits(max_bytes=16 * KiB, deadline_seconds=5.0),
})


@dataclass(frozen=True)
class ExchangePolicy:
    """What one exchange may do.

    ``kind``: e.g. ``"discovery"``, ``"token"``, ``"fhir"``, ``"binary"`` (named
    in errors); ``allowed_origins``: origins requests may be sent to, given as
    ``(scheme, host, port)`` tuples or ``scheme://host[:port]`` strings and
    normalised here (lower-case, default port folded, so ``https://EHR:443``
    equals ``https://ehr``), a frozenset of :data:`~app.outbound.target.Origin`
    afterwards; ``max_bytes``: body cap (bytes, wire and decoded);
    ``deadline_seconds``: overall wall-clock limit; ``follow_same_origin_redirects``:
    follow a 3xx whose ``Location`` is on the request's own origin, only for a
    GET with no body, no ``Authorization``/``Cookie`` header and no auth
    (RFC 9700 §4.11: a credential never follows a redirect); anything else is
    :class:`~app.outbound.errors.RedirectRefused`.

    Raises ``ValueError`` for an empty allowlist or non-positive limits, and
    :class:`~app.outbound.errors.RefusedTarget` for an unparseable origin.
    """

    kind: str
    allowed_origins: frozenset = field(default_factory=frozenset)
    max_bytes: int = 64 * KiB
    deadline_seconds: float = 15.0
    follow_same_origin_redirects: bool = False

    def __post_init__(self):
        origins = frozenset(normalise_origin(o) for o in self.allowed_origins)
        if not origins:
            raise ValueError("an exchange policy needs at least one allowed origin")
        if self.max_bytes <= 0 or self.deadline_seconds <= 0:
            raise ValueError("max_bytes and deadline_seconds must be positive")
        object.__setattr__(self, "allowed_origins", origins)

    def allows(self, origin: Origin) -> bool:
        """True when ``origin`` (already normalised) is on the allowlist."""
        return origin in self.allowed_origins

    @property
    def origin_strings(self) -> tuple[str, ...]:
        """The allowlist as sorted ``scheme://host[:port]`` strings (for logs)."""
        return tuple(sorted(format_origin(o) for o in self.allowed_origins))


def make_policy(limits: Mapping[str, ExchangeLimits], kind: str, origins: Iterable, **overrides) -> ExchangePolicy:
    """A policy of ``kind`` with that kind's limits, for ``origins``; ``overrides`` replace single fields.

    Raises ``KeyError`` for a kind without limits.
    """
    base = limits[kind]
    values = {"max_bytes": base.max_bytes, "deadline_seconds": base.deadline_seconds,
              "follow_same_origin_redirects": base.follow_same_origin_redirects}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ExchangePolicy(kind=kind, allowed_origins=frozenset(origins), **values)
