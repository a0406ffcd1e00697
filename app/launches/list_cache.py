"""The per-process cache of decoded study lists: a re-opened list costs its launch record and the rows shown.

The launch store keeps each launch's list as its own sealed record
(:meth:`~app.launches.store.LaunchStore.get_study_list`); opening and decoding
it costs 13–25 µs per study (10,000 studies: 130–250 ms). Each worker process keeps the lists it decoded
(or fetched) here, keyed by launch id and the list's random version
(:class:`~app.launches.state.StudyListRef`), so that a re-open on the same worker
reads only the small launch record. A re-fetched list has a new version, so
an entry can never serve an older list; an entry of a discarded or expired
launch is unreachable (the store refuses the launch first) and ages out.

Bounded by entries (:data:`MAX_ENTRIES`) and by an estimate of the memory held
(:data:`MAX_BYTES`; :data:`BYTES_PER_STUDY` per study, measured with
tracemalloc on the bench's generated histories), least recently used first out.
Thread-safe. Entries are shared by the requests of a process: treat a cached
:class:`~app.fhir.study_list.StudyList` as read-only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ..fhir.study_list import StudyList

MAX_ENTRIES = 256
MAX_BYTES = 96 * 1024 * 1024
BYTES_PER_STUDY = 1800  # tracemalloc, 5,000 studies: 1,557 B a decoded summary (or report), 59 B its indexes
BYTES_PER_LIST = 4096
BYTES_PER_SHOWN_ROW = 2400  # the rendered default page kept beside the list (app/web/list_index.py)
SHOWN_ROWS = 200


def cost(study_list: StudyList) -> int:
    """Estimated bytes ``study_list`` holds in memory (with its per-list index and its rendered default page)."""
    return (BYTES_PER_LIST + BYTES_PER_STUDY * (len(study_list.studies) + len(study_list.reports))
            + BYTES_PER_SHOWN_ROW * min(len(study_list.studies), SHOWN_ROWS))


class ListCache:
    """LRU of ``(launch id, list version) -> StudyList`` within ``max_entries`` and ``max_bytes`` (estimated)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], tuple[StudyList, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, launch_id: str, version: str) -> StudyList | None:
        """The cached list, marked most recently used; ``None`` when not cached."""
        key = (launch_id, version)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, launch_id: str, version: str, study_list: StudyList) -> None:
        """Keep ``study_list``; a list larger than the whole budget is not kept. Evicts the least recently used."""
        size = cost(study_list)
        if size > self.max_bytes:
            return
        key = (launch_id, version)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (study_list, size)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted

    def clear(self) -> None:
        """Forget every list."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> dict[str, int]:
        """``{"entries": n, "bytes": estimated}``."""
        with self._lock:
            return {"entries": len(self._entries), "bytes": self._bytes}


LISTS = ListCache()
"""The process's cache (each gunicorn worker has its own; forked workers start it empty)."""


def clear() -> None:
    """Empty this process's cache (tests, the bench's "fresh worker" figure)."""
    LISTS.clear()
