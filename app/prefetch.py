"""Fetching a new launch's study list while the browser follows the callback's redirect.

The callback answers ``303 /l/<launch id>/`` as soon as the token is in; the
study list's first FHIR round trip (Patient read and first ImagingStudy page,
concurrently) starts at the same moment, so the redirect hop and the list
request's own set-up overlap with the EHR's latency. The list request joins the
prefetch when it lands on the same worker process; elsewhere it fetches as
usual. Results are kept for a short time only and taken once.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

KEEP_SECONDS = 60.0


class Prefetcher:
    """Runs ``work()`` per launch id in its own small pool (never the pool the work itself submits to)."""

    def __init__(self, max_workers: int = 4):
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="prefetch")
        self._futures: dict[str, tuple[float, Future]] = {}
        self._lock = threading.Lock()

    def start(self, launch_id: str, work: Callable[[], object]) -> None:
        """Begin ``work`` for ``launch_id``; drops prefetches nobody took within 60 s."""
        now = time.monotonic()
        future = self._executor.submit(work)
        with self._lock:
            for key in [k for k, (started, _) in self._futures.items() if now - started > KEEP_SECONDS]:
                del self._futures[key]
            self._futures[launch_id] = (now, future)

    def take(self, launch_id: str) -> Future | None:
        """The prefetch of ``launch_id`` (removed: a result is used once), or ``None``."""
        with self._lock:
            entry = self._futures.pop(launch_id, None)
        return entry[1] if entry else None
