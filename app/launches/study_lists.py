"""The launch's study list: from the launch's cache while fresh, else fetched from the EHR with the launch's token.

The page is sent after the FIRST ImagingStudy page (``_sort=-started``: what the clinician sees first); older
pages are fetched afterwards by a background loader on the app's executor and written to the launch's list
record one page at a time (:meth:`LaunchContext.keep_study_list`), which the browser polls
(``/l/<id>/rows``). Bounds are the list's own: ``fhir.max_pages``, ``fhir.max_studies``, the list deadline
(``fhir.list_deadline_seconds`` from the first request) and the per-EHR bulkhead, whose slot the loader holds
from the first page to the last.

Several instances may share the store (Redis), so the list record itself says what is going on:
``StudyList.loading`` names the loader (``owner``), when it started and its last write (``heartbeat_at``).
One loader per launch: a loader stops as soon as the stored list names another owner (or none); a
request that finds a live loader does not start another. A loader whose instance died stops writing; once
no live loader can still be at work (:func:`loader_gone`: after the list deadline plus one page's deadline,
or no write for one page's deadline plus a token renewal) the list reads as incomplete (:func:`settled`) and
the next fetch (*Refresh*, or the cache's TTL) starts afresh. A 401 on a later page renews the token once for
that page (:meth:`LaunchContext.with_token`; concurrent renewals share the store's renewal lease).
"""

from __future__ import annotations

import logging
import secrets
import time
from concurrent.futures import Executor
from contextlib import ExitStack
from dataclasses import replace
from typing import Callable

from ..config import FhirSettings
from ..fhir.client import FhirClient
from ..fhir.reports import pdf_bytes, report_subject
from ..fhir.endpoints import IncludedEndpoints
from ..fhir.study_list import (ListLoading, PageCursor, PageStudies, StudyList, StudyListLimits, extended,
                               fetch_first_page, fetch_next_page)
from ..observability import metrics
from ..smart.scopes import allows_search
from .bulkheads import EhrBulkheads
from .context import RENEWAL_LEASE_SECONDS, LaunchContext
from .errors import AuthorizationExpired, LaunchError
from .images import LaunchImages, attach_endpoints
from .qido_list import first_page_or_qido

log = logging.getLogger(__name__)

LOADER_GONE = "loading older studies stopped before the end (the app could not finish it); Refresh to try again"
AUTHORIZATION_ENDED = "the EHR stopped accepting this launch's authorization while older studies were loading"
LOADER_FAILED = "older studies could not be loaded"
SLACK_SECONDS = 5.0
PROGRESS_WRITE_SECONDS = 1.0  # a list record is rewritten at most once a second while loading (then once at the end)

#: ``reopen()``: the launch again, as the store holds it now (``LaunchContext.load`` with the request's browser
#: binding); the background loader calls it before each write.
Reopen = Callable[[], LaunchContext]


def limits_of(fhir: FhirSettings) -> StudyListLimits:
    """The list bounds of the registration's ``fhir`` settings."""
    return StudyListLimits(page_size=fhir.page_size, max_pages=fhir.max_pages, max_studies=fhir.max_studies,
                           deadline_seconds=fhir.list_deadline_seconds)


def loader_gone(loading: ListLoading, fhir: FhirSettings, now: float) -> bool:
    """True when no live loader can still be writing this list: ``now`` is past its start plus the list
    deadline plus one page's deadline (the last page may start just before the list deadline), or its last
    write is older than one page's deadline plus a token renewal (seconds, epoch)."""
    latest_end = loading.started_at + fhir.list_deadline_seconds + fhir.deadline_seconds + SLACK_SECONDS
    silent_for = fhir.deadline_seconds + RENEWAL_LEASE_SECONDS + SLACK_SECONDS
    return now > latest_end or now - loading.heartbeat_at > silent_for


def settled(study_list: StudyList, fhir: FhirSettings, now: float | None = None) -> StudyList:
    """``study_list``, or when its loader is gone (:func:`loader_gone`) a copy that is no longer loading and
    says "List incomplete" (:data:`LOADER_GONE`)."""
    loading = study_list.loading
    if loading is None or not loader_gone(loading, fhir, time.time() if now is None else now):
        return study_list
    return replace(study_list, loading=None, incomplete=study_list.incomplete or LOADER_GONE)


def load_study_list(context: LaunchContext, executor: Executor, *, force: bool = False,
                    images: LaunchImages | None = None, bulkheads: EhrBulkheads | None = None,
                    reopen: Reopen | None = None, background: Executor | None = None) -> tuple[StudyList, bool]:
    """``(study_list, fetched)``: the cached list when younger than ``fhir.study_list_ttl_seconds`` or still
    loading, else fetched.

    A 401 renews the token once (:meth:`LaunchContext.with_token`). When ``fetched`` and the list is not
    ``loading``, the caller keeps it with :meth:`LaunchContext.keep_study_list` (after the response is sent:
    the clinician does not wait for it). With ``reopen`` and more pages to read, the list returned holds the
    first page and ``loading``; a background loader on ``background`` (default ``executor``: a loader holds one
    of its threads for up to the list deadline) keeps it and each further page
    (:func:`load_older_pages`). Without ``reopen`` every page is read before returning. ``force``
    (*Refresh*) refetches unless a live loader is at work on this launch (one at a time). Raises the facts of
    :func:`~app.fhir.study_list.fetch_first_page` and :class:`~app.launches.errors.AuthorizationExpired`.

    With ``images`` (:class:`~app.launches.images.LaunchImages`): the studies' Endpoints are resolved
    (:func:`~app.launches.images.attach_endpoints`), and when the registration maps patient identifiers to a
    DICOMweb service and the EHR offers no ImagingStudy search (CapabilityStatement, or 404/405/501), the list
    comes from QIDO-RS (:func:`~app.launches.qido_list.first_page_or_qido`).

    With ``bulkheads``, the fetch holds one of the EHR's slots (:mod:`app.launches.bulkheads`;
    :class:`~app.launches.errors.EhrBusy` when none frees in time), the background loader until its last page.
    """
    fhir = context.settings.fhir
    ref = context.state.list_ref  # judged before the list is read: a stale, settled list is never opened
    stale = ref is None or force or time.time() - ref.fetched_at >= fhir.study_list_ttl_seconds
    cached = context.state.study_list if ref is not None and (ref.loading or not stale) else None
    if cached is not None:
        cached = settled(cached, fhir)
        if cached.loading is not None:
            return cached, False
        if not stale:
            return cached, False
    limits = limits_of(fhir)
    state = context.state
    want_banner = state.grant.need_patient_banner
    want_reports = allows_search(state.grant.scope, "DiagnosticReport")
    included = IncludedEndpoints() if images is not None else None
    cursors: list[PageCursor] = []

    def fetch(token: str) -> StudyList:
        client = FhirClient(state.iss, token, context.outbound, included=included)
        study_list, cursor = first_page_or_qido(context, client, images, limits, executor, lambda: fetch_first_page(
            client, state.patient, limits, executor, want_banner=want_banner, want_reports=want_reports),
            want_banner=want_banner)
        if cursor is None:  # the list came from QIDO-RS
            return study_list
        cursors.append(cursor)
        if images is None:
            return study_list
        return attach_endpoints(study_list, included, client, context.ehr, images.endpoint_reader)

    with ExitStack() as slot:
        if bulkheads is not None:
            slot.enter_context(bulkheads.slot(state.iss, retry_after=int(fhir.deadline_seconds)))
        study_list = context.with_token(fetch)
        cursor = cursors[-1] if cursors else None
        if cursor is None or not cursor.more:
            return study_list, True
        owner = secrets.token_urlsafe(12)
        study_list = replace(study_list, load_id=owner, loading=ListLoading(owner, study_list.fetched_at,
                                                                            study_list.fetched_at))
        if reopen is None:
            return _read_all(context, study_list, cursor, limits, images, included), True
        held = slot.pop_all()  # the slot now belongs to the loader
        try:
            (background or executor).submit(load_older_pages, reopen, study_list, cursor, limits, images, included,
                                            held)
        except BaseException:
            held.close()
            raise
    return study_list, True


def _read_all(context: LaunchContext, study_list: StudyList, cursor: PageCursor, limits: StudyListLimits,
              images: LaunchImages | None, included: IncludedEndpoints | None) -> StudyList:
    """Every further page, in this thread (no background loader)."""
    while cursor.more:
        study_list = _next(context, study_list, cursor, limits, images, included)
    return replace(study_list, loading=None)


def _next(context: LaunchContext, study_list: StudyList, cursor: PageCursor, limits: StudyListLimits,
          images: LaunchImages | None, included: IncludedEndpoints | None) -> StudyList:
    """``study_list`` with the cursor's next page (a 401 renews the token once, then that page is asked again)."""
    state = context.state

    def read(token: str) -> tuple[PageStudies, FhirClient]:
        client = FhirClient(state.iss, token, context.outbound, included=included)
        return fetch_next_page(client, cursor, state.patient, limits), client

    page, client = context.with_token(read)
    if images is not None and page.studies:
        page = PageStudies(attach_endpoints(StudyList(studies=page.studies, banner=None), included, client,
                                            context.ehr, images.endpoint_reader).studies, page.excluded)
    return extended(study_list, page, cursor)


def _owns(context: LaunchContext, owner: str) -> bool:
    """The stored list is this loader's and still loading (another fetch, or a settled list, ends it)."""
    stored = context.state.study_list
    return stored is not None and stored.loading is not None and stored.loading.owner == owner


KEEP_ATTEMPTS = 3


def _keep(reopen: Reopen, study_list: StudyList, *, first: bool = False) -> bool:
    """Write ``study_list`` to the launch's list record and read it back; ``False`` when the stored list is
    another loader's (or settled) and this loader must stop. A write lost to a concurrent change of the
    launch (a token renewal) is tried again, at most :data:`KEEP_ATTEMPTS` times."""
    owner = study_list.load_id
    for _ in range(KEEP_ATTEMPTS):
        context = reopen()
        stored = context.state.study_list
        if first:
            if stored is not None and stored.loading is not None and stored.load_id != owner \
                    and not loader_gone(stored.loading, context.settings.fhir, time.time()):
                return False  # another request's loader is at work on this launch
        elif stored is None or stored.load_id != owner or stored.loading is None:
            return False
        context.keep_study_list(study_list)
        written = reopen().state.study_list
        if written is not None and written.load_id == owner and len(written.studies) == len(study_list.studies) \
                and (written.loading is None) == (study_list.loading is None):
            return True
        first = first and (written is None or written.load_id != owner)
    log.info("the study list could not be written after %d attempts", KEEP_ATTEMPTS)
    return False


def load_older_pages(reopen: Reopen, study_list: StudyList, cursor: PageCursor, limits: StudyListLimits,
                     images: LaunchImages | None, included: IncludedEndpoints | None, slot: ExitStack) -> None:
    """The background loader: keep ``study_list`` (the first page, ``loading``), then read each further page
    and keep the list after it (``heartbeat_at`` updated; at most once per :data:`PROGRESS_WRITE_SECONDS`, so a
    fast EHR's 50 pages do not rewrite a growing record 50 times), until the cursor stops; the last write settles the
    list (``loading`` ``None``, ``incomplete`` saying why paging stopped early, if it did). Stops when the
    stored list names another loader. Never raises; ``slot`` (the EHR's bulkhead slot) is released at the end."""
    try:
        with slot:
            if not _keep(reopen, study_list, first=True):
                return
            last_write = float("-inf")  # the second page is shown at once, later ones at most once a second
            while cursor.more:
                context = reopen()
                if not _owns(context, study_list.load_id or ""):
                    return
                try:
                    study_list = _next(context, study_list, cursor, limits, images, included)
                except AuthorizationExpired:
                    study_list = replace(study_list, incomplete=study_list.incomplete or AUTHORIZATION_ENDED)
                    break
                if cursor.more and time.monotonic() - last_write >= PROGRESS_WRITE_SECONDS:
                    study_list = replace(study_list, loading=replace(study_list.loading, heartbeat_at=time.time()))
                    if not _keep(reopen, study_list):
                        return
                    last_write = time.monotonic()
            if _keep(reopen, replace(study_list, loading=None)):
                metrics.STUDIES_PER_LIST.observe(len(study_list.studies))
    except LaunchError as exc:
        log.info("older studies not loaded: %s", type(exc).__name__)  # the launch ended or the store is down
    except Exception:  # noqa: BLE001 - a background task must end the loading state, never crash the pool
        log.exception("loading older studies failed")
        try:
            _keep(reopen, replace(study_list, loading=None, incomplete=study_list.incomplete or LOADER_FAILED))
        except Exception:  # noqa: BLE001
            log.info("the list could not be marked incomplete; it reads so once its loader is known gone")


def report_pdf_bytes(context: LaunchContext, report_id: str, index: int) -> bytes | None:
    """The PDF of ``DiagnosticReport/<report_id>`` (``presentedForm[index]``), read with the launch's token;
    ``None`` when the report is not the launch patient's or holds no valid PDF there."""
    state = context.state
    resource = context.with_token(lambda token: FhirClient(state.iss, token, context.outbound).read(
        "DiagnosticReport", report_id))
    if report_subject(resource) != state.patient:
        return None
    return pdf_bytes(resource, index)
