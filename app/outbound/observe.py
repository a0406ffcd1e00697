"""What the outbound client tells about each exchange: the request id it forwards, and per-request counters.

:data:`REQUEST_ID` (a ``ContextVar``): set by the web layer for the length of
one incoming request; :meth:`~app.outbound.client.OutboundClient.send_prepared`
sends it upstream as ``X-Request-ID`` (when the caller set none).
:data:`UPSTREAM_STATS` (a ``ContextVar`` holding an :class:`UpstreamStats`):
every exchange adds one call and its wall-clock seconds. :data:`OBSERVERS`:
callables ``(kind, seconds, outcome)`` (``outcome``: HTTP status as a string, or
the failure's class name) for metrics. Nothing here sees a URL, header or body.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


@dataclass
class UpstreamStats:
    """Upstream ``calls`` and their total ``seconds`` during one incoming request (thread-safe)."""

    calls: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, seconds: float) -> None:
        """Count one exchange of ``seconds``."""
        with self._lock:
            self.calls += 1
            self.seconds += seconds


UPSTREAM_STATS: ContextVar[UpstreamStats | None] = ContextVar("upstream_stats", default=None)
OBSERVERS: list[Callable[[str, float, str], None]] = []


def observe(kind: str, seconds: float, outcome: str) -> None:
    """Record one finished exchange (called by the client; never raises)."""
    stats = UPSTREAM_STATS.get()
    if stats is not None:
        stats.add(seconds)
    for observer in list(OBSERVERS):
        try:
            observer(kind, seconds, outcome)
        except Exception:  # pragma: no cover - metrics never break a request
            pass
