"""Where AuditEvents go: JSON lines (a file or stdout) and, optionally, a FHIR server in the background.

:class:`AuditTrail` ``record(event)`` never blocks a page on the network:

* :class:`JsonLinesSink` appends one compact JSON object per line (``\\n``),
  under a lock, flushed per line; the file is created 0600.
* :class:`FhirAuditSink` puts events on a bounded queue (``queue_size``; when
  full the oldest is dropped and counted in ``dropped``); one daemon thread
  takes up to ``batch_size`` at a time and POSTs a FHIR ``batch`` Bundle
  (FHIR R4 §3.1.0.11 batch) of ``POST AuditEvent`` entries to the endpoint,
  through the guarded outbound client (kind ``"audit"``), retrying
  ``max_attempts`` times with a doubling delay on a transport failure or a
  5xx/429; a 4xx other than 429 is not retried (counted in ``failed``).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
from typing import IO, Protocol

from ..outbound import ExchangeLimits, OutboundClient, OutboundError
from ..urls import origin_of

log = logging.getLogger(__name__)

AUDIT_LIMITS = ExchangeLimits(max_bytes=256 * 1024, deadline_seconds=10.0)
"""Caps of the ``"audit"`` exchange kind (the answer to a batch POST)."""


class AuditSink(Protocol):
    """Something that takes an AuditEvent dict."""

    def write(self, event: dict) -> None: ...


class JsonLinesSink:
    """One JSON object per line to ``path`` (``"-"``: stdout)."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._stream: IO[str] | None = None

    def _open(self) -> IO[str]:
        if self.path == "-":
            return sys.stdout
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8")

    def write(self, event: dict) -> None:
        """Append ``event`` (a failure is logged, never raised to the page)."""
        line = json.dumps(event, separators=(",", ":"), sort_keys=True, ensure_ascii=False) + "\n"
        with self._lock:
            try:
                if self._stream is None:
                    self._stream = self._open()
                self._stream.write(line)
                self._stream.flush()
            except OSError as exc:
                log.error("audit trail not written to %s: %s", self.path, exc.strerror)

    def close(self) -> None:
        """Close the file (stdout is left open)."""
        with self._lock:
            if self._stream is not None and self._stream is not sys.stdout:
                self._stream.close()
            self._stream = None


class FhirAuditSink:
    """POSTs AuditEvents in ``batch`` Bundles to ``endpoint`` (a FHIR base URL) from a background thread."""

    def __init__(self, endpoint: str, outbound: OutboundClient, *, token: str | None = None, batch_size: int = 20,
                 queue_size: int = 1000, max_attempts: int = 4, retry_delay: float = 0.5):
        self.endpoint = endpoint.rstrip("/")
        self._outbound = outbound
        self._policy = outbound.policy("audit", origin_of(endpoint))
        self._headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json",
                         **({"Authorization": f"Bearer {token}"} if token else {})}
        self._batch_size = batch_size
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self.sent = self.failed = self.dropped = 0
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="audit-fhir", daemon=True)
        self._thread.start()

    def write(self, event: dict) -> None:
        """Queue ``event``; when the queue is full the oldest event is dropped."""
        self._idle.clear()
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was sent or given up (tests, shutdown); True when done in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and self._idle.wait(0.05) and self._queue.empty():
                return True
        return False

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            self._idle.clear()
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._send(batch)
            if self._queue.empty():
                self._idle.set()

    def _send(self, batch: list[dict]) -> None:
        bundle = {"resourceType": "Bundle", "type": "batch",
                  "entry": [{"resource": e, "request": {"method": "POST", "url": "AuditEvent"}} for e in batch]}
        body = json.dumps(bundle, separators=(",", ":")).encode("utf-8")
        delay = self._retry_delay
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = self._outbound.post(self.endpoint, policy=self._policy, headers=self._headers, data=body)
                if 200 <= response.status < 300:
                    self.sent += len(batch)
                    return
                retry = response.status >= 500 or response.status == 429
                log.warning("audit endpoint answered HTTP %s (attempt %s)", response.status, attempt)
            except OutboundError as exc:
                retry = True
                log.warning("audit endpoint not reached: %s (attempt %s)", type(exc).__name__, attempt)
            if not retry or attempt == self._max_attempts:
                break
            time.sleep(delay)
            delay *= 2
        self.failed += len(batch)


class AuditTrail:
    """The app's audit trail: every event goes to each sink; ``events_recorded`` counts them."""

    def __init__(self, sinks: list[AuditSink]):
        self.sinks = sinks
        self.events_recorded = 0

    @property
    def enabled(self) -> bool:
        """True when some sink takes events."""
        return bool(self.sinks)

    def record(self, event: dict) -> None:
        """Hand ``event`` to every sink (never raises: an audit failure is logged, the page goes on)."""
        self.events_recorded += 1
        for sink in self.sinks:
            try:
                sink.write(event)
            except Exception:  # pragma: no cover - a sink must never break a page
                log.exception("audit sink failed")
