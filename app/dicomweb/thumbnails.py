"""A study's thumbnail with fallbacks, and a bounded per-launch cache.

Steps (DICOM PS3.18 §10.4.1.1.5 thumbnails, §10.4.1.1.3 rendered), each tried when the previous
one is not offered (:attr:`~app.dicomweb.errors.DicomwebHttpError.unsupported`: 400/404/405/406/415/501,
or an answer that is not an image):

1. ``{base}/studies/{study}/thumbnail?viewport=vw,vh``
2. ``{base}/studies/{study}/series/{series}/thumbnail?viewport=vw,vh`` for the representative series
3. ``{base}/studies/{study}/series/{series}/instances/{sop}/rendered`` for the representative instance
   (``viewport`` fitted to Rows/Columns when QIDO-RS gave them, else none and scaled here)

The representative series and instance come from the ImagingStudy when it lists them, else from
QIDO-RS ``/studies/{study}/series`` and ``.../instances`` (:func:`app.dicom.representative_instance`:
the middle instance of the first image series, SR/KO/PR skipped). 401/403 and transport failures end
the chain (raised): a refused credential is not retried elsewhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from ..dicom import SeriesSketch, representative_instance
from .errors import DicomwebBadContent, DicomwebError, DicomwebHttpError
from .images import Thumbnail, reencode
from .qido import first_int, first_text, series_sketch
from .service import DicomwebService

log = logging.getLogger(__name__)

BOX = (128, 128)
MAX_QIDO_SERIES = 50


@dataclass(frozen=True)
class StudyRef:
    """What the chain needs of one study: ``study_uid``, and the representative ``series_uid`` /
    ``instance_uid`` when the ImagingStudy listed them (else ``None``: asked with QIDO-RS)."""

    study_uid: str
    series_uid: str | None = None
    instance_uid: str | None = None


def _next_step(exc: DicomwebError) -> bool:
    """True when the chain goes on to the next step after ``exc``."""
    return isinstance(exc, DicomwebBadContent) or (isinstance(exc, DicomwebHttpError) and exc.unsupported)


def _from_qido(service: DicomwebService, study_uid: str) -> tuple[str, str, tuple[int, int] | None] | None:
    """``(series, instance, (columns, rows) or None)`` of the representative instance found with QIDO-RS."""
    sketches: list[SeriesSketch] = []
    sizes: dict[str, tuple[int, int]] = {}
    series_list = service.search_series(study_uid)[:MAX_QIDO_SERIES]
    ordered = sorted(series_list, key=lambda s: (first_int(s, "00200011") is None, first_int(s, "00200011") or 0))
    for series in ordered:
        modality = (first_text(series, "00080060", 16) or "").upper()
        uid = first_text(series, "0020000E", 64)
        if not uid or modality in ("SR", "KO", "PR"):
            continue
        instances = service.search_instances(study_uid, uid)
        for item in instances:
            sop, rows, cols = first_text(item, "00080018", 64), first_int(item, "00280010"), first_int(item, "00280011")
            if sop and rows and cols:
                sizes[sop] = (cols, rows)
        sketch = series_sketch(series, instances)
        if sketch is not None and sketch.instances:
            sketches.append(sketch)
            break  # the first image series with instances is the one shown
    picked = representative_instance(sketches)
    return (picked[0], picked[1], sizes.get(picked[1])) if picked else None


def _fit(size: tuple[int, int] | None, box: tuple[int, int]) -> tuple[int, int] | None:
    """A viewport inside ``box`` keeping ``size``'s aspect ratio (PS3.18 §8.3.5.1.3 lets servers stretch)."""
    if not size:
        return None
    cols, rows = size
    scale = min(box[0] / cols, box[1] / rows, 1.0)
    return max(1, round(cols * scale)), max(1, round(rows * scale))


def fetch_thumbnail(service: DicomwebService, study: StudyRef, box: tuple[int, int] = BOX) -> Thumbnail | None:
    """The study's thumbnail (re-encoded JPEG fitted into ``box``), or ``None`` when no step offers one.

    Raises :class:`~app.dicomweb.errors.DicomwebHttpError` for 401/403/other statuses that are not
    "unsupported", and :mod:`app.outbound.errors` transport facts.
    """
    try:
        content, media_type = service.study_thumbnail(study.study_uid, box)
        return reencode(content, media_type, box, "study-thumbnail")
    except DicomwebError as exc:
        if not _next_step(exc):
            raise
    series_uid, instance_uid, size = study.series_uid, study.instance_uid, None
    if not (series_uid and instance_uid):
        try:
            found = _from_qido(service, study.study_uid)
        except DicomwebError as exc:
            if not _next_step(exc):
                raise
            found = None
        if found is None:
            return None
        series_uid, instance_uid, size = found
    try:
        content, media_type = service.series_thumbnail(study.study_uid, series_uid, box)
        return reencode(content, media_type, box, "series-thumbnail")
    except DicomwebError as exc:
        if not _next_step(exc):
            raise
    try:
        content, media_type = service.rendered(study.study_uid, series_uid, instance_uid, _fit(size, box))
        return reencode(content, media_type, box, "rendered")
    except DicomwebError as exc:
        if not _next_step(exc):
            raise
    return None


class ThumbnailCache:
    """Thumbnails (or ``None``: "none offered") per ``(launch id, study id)`` for ``ttl_seconds``, in memory.

    Bound to the launch: the key is the launch id, so one launch is never given another's thumbnail, even of
    the same Study Instance UID (each launch's access to that study was checked with its own token). Bounded:
    at most ``max_entries`` entries and ``max_bytes`` of JPEG bytes in all (least recently used dropped first);
    a thumbnail larger than ``max_entry_bytes`` is served but not kept. Thread-safe.

    Per process: with several instances sharing a Redis launch store, each instance keeps its own cache (a
    thumbnail may be fetched once per instance that serves it). That is acceptable because entries are small,
    short-lived (``dicomweb.thumbnail_ttl_seconds``) and re-fetchable, and the browser caches them too
    (``Cache-Control: private``); sharing them would put image bytes of PHI into the store for no clinical gain.
    """

    def __init__(self, max_entries: int = 2000, max_bytes: int = 32 * 1024 * 1024, max_entry_bytes: int = 512 * 1024):
        self._max_entries, self._max_bytes = max_entries, max_bytes
        self._max_entry_bytes = min(max_entry_bytes, max_bytes)
        self._items: OrderedDict[tuple[str, str], tuple[float, Thumbnail | None]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, launch_id: str, study_id: str) -> tuple[bool, Thumbnail | None]:
        """``(hit, thumbnail)``; a hit may be ``None`` (no thumbnail offered, remembered)."""
        key = (launch_id, study_id)
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return False, None
            if item[0] <= time.monotonic():
                self._drop(key)
                return False, None
            self._items.move_to_end(key)
            return True, item[1]

    def put(self, launch_id: str, study_id: str, thumbnail: Thumbnail | None, ttl_seconds: float) -> None:
        """Keep ``thumbnail`` for ``ttl_seconds`` (replacing the entry; nothing kept for 0 or an oversized one)."""
        key = (launch_id, study_id)
        size = len(thumbnail.content) if thumbnail else 0
        with self._lock:
            if key in self._items:
                self._drop(key)
            if ttl_seconds <= 0 or size > self._max_entry_bytes:
                return
            self._items[key] = (time.monotonic() + ttl_seconds, thumbnail)
            self._bytes += size
            while self._items and (len(self._items) > self._max_entries or self._bytes > self._max_bytes):
                self._drop(next(iter(self._items)))

    def _drop(self, key: tuple[str, str]) -> None:
        _, thumbnail = self._items.pop(key)
        self._bytes -= len(thumbnail.content) if thumbnail else 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        """JPEG bytes held now."""
        return self._bytes
