"""Per-list indexes of the list page, built once per decoded list instead of once per request.

A re-opened list is served from the worker's cache of decoded lists
(:mod:`app.launches.list_cache`), so the same :class:`~app.fhir.study_list.StudyList`
object comes back on every re-open of a launch on that worker. What the page
derives from the whole history (id → study, the report of each study, the
modalities of the filter, the priors index, the default rows) is kept here
beside it, so that a re-open costs the rows rendered, not the history.

Rendering the 200 rows is then most of what is left (Jinja, about 0.1 ms a
row, 2.3 KB of HTML each): :func:`cached_page` keeps the rendered HTML of
the list's *default view* (no filter, no study selected, the first rows) for
the minute it was rendered in (row ages are in days), so re-opening a list
costs its launch record and the bytes sent. Any other view (a selected
study, a filter, more rows) is rendered for its request.

:func:`index_of` memoises one :class:`ListIndex` per list object (held by a
weak reference: it goes when the list goes) and checks a fingerprint of the
list (how many studies and reports, ``fetched_at``, the identity of its
``studies`` list), so a list changed in place gets a fresh index. Thread-safe;
a race builds an index twice, never a wrong one.
"""

from __future__ import annotations

import gzip as gzip_module
import threading
import weakref
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from ..fhir.imaging import StudySummary
from ..fhir.reports import ReportSummary, reports_by_study
from ..fhir.study_list import StudyList

if TYPE_CHECKING:  # pragma: no cover
    from .presenter import StudyListPage

T = TypeVar("T")


def _fingerprint(study_list: StudyList) -> tuple:
    return (id(study_list.studies), len(study_list.studies), id(study_list.reports), len(study_list.reports),
            study_list.fetched_at, getattr(study_list, "loading", None))


class ListIndex:
    """Derived views of one list, each computed on first use.

    ``by_id``: FHIR id → study (the first of a duplicated id, as :meth:`StudyList.find`);
    ``reports``: study id → its report (:func:`~app.fhir.reports.reports_by_study`);
    ``modalities``: every modality of the list, sorted (the filter's options);
    :meth:`memo`: anything else keyed by the caller (the priors index, the default rows).
    """

    def __init__(self, study_list: StudyList):
        self._list = weakref.ref(study_list)
        self.fingerprint = _fingerprint(study_list)
        self._memo: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def memo(self, key: Any, build: Callable[[], T], keep: int = 16) -> T:
        """``build()`` the first time ``key`` is asked for, the same value afterwards.

        At most ``keep`` keys of a kind are kept, the oldest dropped (a key whose first item is a kind
        name, e.g. ``("rows", page_url, minute)``)."""
        try:
            return self._memo[key]
        except KeyError:
            pass
        value = build()
        with self._lock:
            if isinstance(key, tuple) and key:
                same_kind = [k for k in self._memo if isinstance(k, tuple) and k and k[0] == key[0]]
                for old in same_kind[:max(0, len(same_kind) - (keep - 1))]:
                    del self._memo[old]
            self._memo[key] = value
        return value

    def _study_list(self) -> StudyList:
        study_list = self._list()
        if study_list is None:  # pragma: no cover - the caller holds the list
            raise RuntimeError("the list of this index is gone")
        return study_list

    @property
    def by_id(self) -> dict[str, StudySummary]:
        """FHIR id → study."""
        def build() -> dict[str, StudySummary]:
            out: dict[str, StudySummary] = {}
            for study in self._study_list().studies:
                if study.id is not None:
                    out.setdefault(study.id, study)
            return out
        return self.memo("by_id", build)

    @property
    def reports(self) -> dict[str, ReportSummary]:
        """Study id → its report."""
        study_list = self._study_list()
        return self.memo("reports", lambda: reports_by_study(study_list.studies, study_list.reports))

    @property
    def modalities(self) -> list[str]:
        """The list's modalities, sorted."""
        return self.memo("modalities", lambda: sorted({m for s in self._study_list().studies for m in s.modalities}))

    def find(self, study_id: str) -> StudySummary | None:
        """The study with FHIR id ``study_id``, else ``None`` (:meth:`StudyList.find` in one step)."""
        return self.by_id.get(study_id)


def is_default_view(page: "StudyListPage", default_rows: int) -> bool:
    """True for the page a re-opened list shows: no filter, nothing selected or asked for, the first rows."""
    return not (page.query.active or page.selected or page.missing_selection or page.dropped_selection
                or page.show_all) and len(page.rows) <= default_rows and page.viewer_url is None


def cached_page(page: "StudyListPage", render: Callable[[], str], *, default_rows: int,
                header: tuple = (), now: datetime | None = None, gzip: bool = False) -> bytes:
    """``render()``'s HTML for ``page`` as UTF-8 bytes, kept beside the list for the minute when ``page`` is its
    default view (:func:`is_default_view`; encoding 450 KB again is a third of a cached re-open); ``header``:
    what else the page shows that is not in ``page`` (the signed-in user, the encounter, the request's query
    string: an argument the page learns later makes another key). Keyed also by the rows shown (their
    identity, in order). One page per list is kept (the newest minute's).

    ``gzip``: the kept page compressed (RFC 1952 via :func:`gzip.compress`, ``mtime`` 0), itself kept beside it
    (a 430 KB page of 200 rows is about 30 KB: what a re-open costs to send is then the compressed bytes).
    Only the default view is kept, so only it can be asked for compressed: ``ValueError`` otherwise (the caller
    checks :func:`is_default_view`). The page holds no secret (tokens stay on the server; no reflected query
    in the kept view), so compression reveals nothing (BREACH needs both).
    """
    if not is_default_view(page, default_rows):
        if gzip:
            raise ValueError("only the kept default view is sent compressed")
        return render().encode("utf-8")
    minute = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M")
    index = index_of(page.study_list)
    key = ("html", page.launch_id, page.page_url, minute, header, tuple(map(id, page.rows)))
    html = index.memo(key, lambda: render().encode("utf-8"), keep=1)
    if not gzip:
        return html
    return index.memo(("gzip", *key[1:]), lambda: gzip_module.compress(html, compresslevel=6, mtime=0), keep=1)


_INDEXES: dict[int, tuple[weakref.ref, ListIndex]] = {}
_LOCK = threading.Lock()


def _forget(key: int) -> Callable[[weakref.ref], None]:
    def drop(ref: weakref.ref) -> None:
        with _LOCK:
            entry = _INDEXES.get(key)
            if entry is not None and entry[0] is ref:
                del _INDEXES[key]
    return drop


def index_of(study_list: StudyList) -> ListIndex:
    """The :class:`ListIndex` of ``study_list`` (built once per list object and content)."""
    key = id(study_list)
    entry = _INDEXES.get(key)
    if entry is not None and entry[0]() is study_list and entry[1].fingerprint == _fingerprint(study_list):
        return entry[1]
    index = ListIndex(study_list)
    with _LOCK:
        _INDEXES[key] = (weakref.ref(study_list, _forget(key)), index)
    return index
