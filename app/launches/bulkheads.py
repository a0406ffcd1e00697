"""A bound on how many study lists one EHR may be fetching at once in this process (a bulkhead).

A slow or trickling EHR holds each request's thread until the deadline; without
a bound, enough of them take every thread of a worker and the clinicians of a
healthy EHR behind the same worker wait. With it, at most
``fhir.max_concurrent_lists_per_ehr`` threads wait on one EHR; a request beyond
that waits up to ``fhir.busy_wait_seconds`` for a slot, then gets a 503 with
``Retry-After`` (:class:`~app.launches.errors.EhrBusy`).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from ..urls import iss_key
from .errors import EhrBusy


class EhrBulkheads:
    """Per-``iss`` semaphores of ``limit`` slots (``None``: unbounded); thread-safe."""

    def __init__(self, limit: int | None, wait_seconds: float):
        self.limit = limit
        self.wait_seconds = wait_seconds
        self._slots: dict[tuple, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def _semaphore(self, iss: str) -> threading.BoundedSemaphore:
        key = iss_key(iss)
        with self._lock:
            if key not in self._slots:
                self._slots[key] = threading.BoundedSemaphore(self.limit)
            return self._slots[key]

    @contextmanager
    def slot(self, iss: str, retry_after: int) -> Iterator[None]:
        """Hold one of ``iss``'s slots for the block; raises :class:`EhrBusy` (``retry_after`` s) when none frees in time."""
        if self.limit is None:
            yield
            return
        semaphore = self._semaphore(iss)
        if not semaphore.acquire(timeout=self.wait_seconds):
            raise EhrBusy(retry_after)
        try:
            yield
        finally:
            semaphore.release()
