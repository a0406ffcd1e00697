"""The launch patient's study list: ImagingStudy search (page by page) and the Patient banner.

Request: ``GET {iss}/ImagingStudy?patient={id}&_sort=-started&_count={page_size}``
(FHIR R4 ImagingStudy search parameters ``patient``, ``started``); the
``Patient/{id}`` read for the banner and, when the granted scope allows it, the
``DiagnosticReport?patient={id}`` search run concurrently with the first page, so
a list costs one FHIR round trip plus one per further page. Summaries are
built page by page (raw pages are not kept), at most ``max_studies`` of them.

:func:`fetch_first_page` returns the list after the first page (newest first: what the clinician sees
first) and a :class:`PageCursor` when more pages follow; :func:`fetch_next_page` reads one further page
(the caller may renew the token between pages). :func:`fetch_study_list` reads them all.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Executor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode, urljoin

from ..outbound import OutboundError
from ..urls import same_origin
from .client import FhirClient, _next_link, _short_reason
from .errors import FhirBadContent, FhirError, FhirHttpError, FhirUnauthorized
from .outcome import outcome_text
from .imaging import SUMMARY_FIELDS, StudySummary, newest_first, summarize
from .patient import PatientBanner, banner_from_resource
from .reports import ReportSummary, report_subject, summarize_report

REPORTS_NOT_GRANTED = "Reports are not available to this app (the EHR did not grant DiagnosticReport access)."
REPORTS_FAILED = "The reports could not be read from the EHR."

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListLoading:
    """Older pages of a list are being fetched in the background.

    ``owner``: random id of the loader (one per fetch; a loader that finds another owner in the store stops);
    ``started_at``: epoch seconds of the first page's request; ``heartbeat_at``: epoch seconds of the
    loader's last write (one per page). A loader whose process is gone stops writing: readers treat the
    list as incomplete once it cannot be alive any more (:func:`app.launches.study_lists.settled`).
    """

    owner: str
    started_at: float
    heartbeat_at: float

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"owner": self.owner, "started_at": self.started_at, "heartbeat_at": self.heartbeat_at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ListLoading":
        """Inverse of :meth:`to_json`."""
        return cls(owner=str(data["owner"]), started_at=float(data["started_at"]),
                   heartbeat_at=float(data["heartbeat_at"]))


@dataclass
class StudyList:
    """What the list page shows.

    ``incomplete``: why some studies could not be read (shown as a notice);
    ``warnings``: OperationOutcome texts; ``excluded``: studies dropped because
    they named another patient; ``total``: ``Bundle.total`` when given;
    ``fetched_at``: epoch seconds of the last page read; ``loading``: older pages are still being
    fetched (:class:`ListLoading`), ``None`` when the list is settled; ``load_id``: the fetch that built
    this list (the browser's appended rows must come from the same one).
    """

    studies: list[StudySummary]
    banner: PatientBanner | None
    banner_problem: str | None = None
    incomplete: str | None = None
    warnings: list[str] = field(default_factory=list)
    excluded: int = 0
    total: int | None = None
    fetched_at: float = 0.0
    reports: list[ReportSummary] = field(default_factory=list)
    reports_problem: str | None = None
    loading: ListLoading | None = None
    load_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-able form for the launch store: studies as rows (:meth:`StudySummary.to_row`) under one
        ``study_fields`` list of names."""
        return {"study_fields": list(SUMMARY_FIELDS), "studies": [s.to_row() for s in self.studies],
                "banner": self.banner.to_json() if self.banner else None,
                "banner_problem": self.banner_problem, "incomplete": self.incomplete,
                "warnings": self.warnings, "excluded": self.excluded, "total": self.total,
                "fetched_at": self.fetched_at, "reports": [r.to_json() for r in self.reports],
                "reports_problem": self.reports_problem,
                "loading": self.loading.to_json() if self.loading else None, "load_id": self.load_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StudyList":
        """Inverse of :meth:`to_json`; also reads the earlier form (one object per study)."""
        names = tuple(data["study_fields"]) if "study_fields" in data else None
        rows = data["studies"]
        studies = [StudySummary.from_row(s, names) for s in rows] if names is not None \
            else [StudySummary.from_json(s) for s in rows]
        return cls(studies=studies,
                   banner=PatientBanner.from_json(data["banner"]) if data.get("banner") else None,
                   banner_problem=data.get("banner_problem"), incomplete=data.get("incomplete"),
                   warnings=list(data.get("warnings") or ()), excluded=data.get("excluded", 0),
                   total=data.get("total"), fetched_at=data.get("fetched_at", 0.0),
                   reports=[ReportSummary.from_json(r) for r in data.get("reports") or ()],
                   reports_problem=data.get("reports_problem"),
                   loading=ListLoading.from_json(data["loading"]) if data.get("loading") else None,
                   load_id=data.get("load_id"))

    def find(self, study_id: str) -> StudySummary | None:
        """The study with FHIR id ``study_id`` in this list, else ``None``."""
        return next((s for s in self.studies if s.id == study_id), None)


@dataclass(frozen=True)
class StudyListLimits:
    """Bounds on one list: ``page_size`` (``_count``), ``max_pages``, ``max_studies`` and ``deadline_seconds``
    (no further page is asked for after it; then "list incomplete")."""

    page_size: int
    max_pages: int
    max_studies: int = 10_000
    deadline_seconds: float = 60.0


def search_path(patient_id: str, page_size: int) -> str:
    """Relative search URL for the launch patient's studies, newest first, with their Endpoints included
    (``_include=ImagingStudy:endpoint``, FHIR R4 §3.1.1.5.5; servers that ignore it send none)."""
    return "ImagingStudy?" + urlencode({"patient": patient_id, "_sort": "-started", "_count": page_size,
                                        "_include": "ImagingStudy:endpoint"})


def subject_id(resource: dict) -> str | None:
    """The Patient id an ImagingStudy names (``subject``, DSTU2 ``patient``), else ``None``."""
    subject = resource.get("subject") or resource.get("patient")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str) or "/" not in reference:
        return None
    parts = reference.rstrip("/").split("/")
    return parts[-1] if len(parts) >= 2 and parts[-2] == "Patient" else None


def _banner(future, patient_id: str) -> tuple[PatientBanner | None, str | None]:
    """``(banner, problem)`` from the concurrent Patient read; a 401 is raised (the caller refreshes)."""
    try:
        return banner_from_resource(future.result(), patient_id), None
    except FhirUnauthorized:
        raise
    except FhirHttpError as exc:
        if exc.status == 403:
            return None, "The EHR did not allow reading the patient's details."
        log.info("patient banner unavailable: HTTP %s", exc.status)
    except (FhirError, OutboundError, ValueError) as exc:
        log.info("patient banner unavailable: %s", type(exc).__name__)
    return None, "The patient's details could not be read."


def report_search_path(patient_id: str, page_size: int) -> str:
    """Relative search URL for the launch patient's DiagnosticReports."""
    return "DiagnosticReport?" + urlencode({"patient": patient_id, "_count": page_size})


def fetch_reports(client: FhirClient, patient_id: str, limits: StudyListLimits,
                  deadline: float) -> tuple[list[ReportSummary], str | None]:
    """``(reports, problem)``: every page of the patient's DiagnosticReports (bounded); failures become a problem.

    Reports naming another patient are dropped.
    """
    try:
        search = client.search("DiagnosticReport", report_search_path(patient_id, limits.page_size),
                               max_pages=limits.max_pages, deadline=deadline)
        reports = [summarize_report(r) for r in search
                   if report_subject(r) in (None, patient_id)][: limits.max_studies]
    except FhirHttpError as exc:
        log.info("reports unavailable: HTTP %s", exc.status)
        return [], REPORTS_NOT_GRANTED if exc.status == 403 else REPORTS_FAILED
    except (FhirError, OutboundError, ValueError) as exc:
        log.info("reports unavailable: %s", type(exc).__name__)
        return [], REPORTS_FAILED
    return reports, (REPORTS_FAILED if search.incomplete else None)


def _reports(future) -> tuple[list[ReportSummary], str | None]:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - the list is shown without reports
        log.info("reports unavailable: %s", type(exc).__name__)
        return [], REPORTS_FAILED


@dataclass
class PageCursor:
    """Where a list's search goes on: the next page's URL and what paging has seen so far (FHIR R4 §3.1.1.5.6).

    ``next_url``: absolute URL of the next page (``None``: no further page); ``pages``: pages read;
    ``visited``: page URLs read (a repeated link stops paging); ``seen_ids``: ImagingStudy ids kept or
    dropped (de-duplication across pages); ``kept``: studies kept (``max_studies``); ``deadline``:
    ``time.monotonic()`` after which no page is asked for; ``incomplete``: why paging stopped early.
    Used by one thread at a time.
    """

    next_url: str | None
    deadline: float
    pages: int = 1
    visited: set[str] = field(default_factory=set)
    seen_ids: set[str] = field(default_factory=set)
    kept: int = 0
    incomplete: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def more(self) -> bool:
        """True when another page is to be read."""
        return self.next_url is not None and self.incomplete is None


@dataclass
class PageStudies:
    """What one page added: ``studies`` (summaries, in the page's order), ``excluded`` (another patient's)."""

    studies: list[StudySummary]
    excluded: int = 0


def _page_matches(client: FhirClient, bundle: dict, cursor: PageCursor) -> list[dict]:
    """The matching ImagingStudy resources of one Bundle (as :class:`~app.fhir.client.Search` reads them):
    ``search.mode`` ``match`` or none, de-duplicated by id; OperationOutcome texts become warnings, included
    entries go to ``client.included``."""
    probe = client.search("ImagingStudy", "ImagingStudy", max_pages=1, first_page=bundle)
    found = list(probe._matches(bundle, cursor.seen_ids))  # noqa: SLF001 - the one reading of entries
    cursor.warnings.extend(probe.warnings)
    return found


def _advance(client: FhirClient, cursor: PageCursor, url: str, bundle: dict, limits: StudyListLimits) -> None:
    """Set ``cursor.next_url`` (or why paging stops) from ``bundle`` read at ``url``: only on the origin of
    ``iss``, never a page already read, at most ``max_pages``, none after the deadline."""
    link = _next_link(bundle)
    cursor.visited.add(url)
    cursor.next_url = None
    if link is None:
        return
    next_url = urljoin(url, link)
    if not same_origin(next_url, client.fhir_base_url):
        cursor.incomplete = "the next page is on another server; the app does not send its token there"
    elif next_url in cursor.visited:
        cursor.incomplete = "the server repeated a page link; paging was stopped"
    elif cursor.pages >= limits.max_pages:
        cursor.incomplete = f"the app stops after {limits.max_pages} pages"
    elif time.monotonic() >= cursor.deadline:
        cursor.incomplete = f"the EHR was too slow; the app stopped after {cursor.pages} pages"
    else:
        cursor.next_url = next_url


def _keep(resources: list[dict | None], patient_id: str, cursor: PageCursor, limits: StudyListLimits) -> PageStudies:
    """Summaries of a page's resources: another patient's dropped and counted, at most ``max_studies`` in all.

    Each resource is removed from ``resources`` once read (the caller holds no other reference to the
    page), so the decoded page shrinks while its summaries grow."""
    page = PageStudies([])
    for index, resource in enumerate(resources):
        resources[index] = None
        subject = subject_id(resource)
        if subject is not None and subject != patient_id:
            page.excluded += 1
            continue
        if cursor.kept >= limits.max_studies:
            cursor.incomplete = f"the app shows at most {limits.max_studies} studies"
            cursor.next_url = None
            break
        cursor.kept += 1
        page.studies.append(summarize(resource))
    return page


def fetch_first_page(client: FhirClient, patient_id: str, limits: StudyListLimits, executor: Executor, *,
                     want_banner: bool, want_reports: bool = False) -> tuple[StudyList, PageCursor]:
    """The list after the first ImagingStudy page (with the banner and reports read concurrently) and its cursor.

    ``cursor.more``: further pages are to be read with :func:`fetch_next_page` (the list then says
    ``incomplete`` only for what already stopped it). ``want_reports``: the granted scope allows searching
    DiagnosticReport (else ``reports_problem`` says reports are not available). Studies naming another
    patient are dropped and counted. Raises the first page's :mod:`app.fhir.errors` / transport facts
    (:class:`FhirUnauthorized` on a 401).
    """
    path = search_path(patient_id, limits.page_size)
    deadline = time.monotonic() + limits.deadline_seconds
    banner_future = executor.submit(client.read, "Patient", patient_id) if want_banner else None
    reports_future = executor.submit(fetch_reports, client, patient_id, limits, deadline) if want_reports else None
    with ExitStack() as page_gc:  # the collector paused from decoding until the page is dropped
        try:
            first_page = client.get_json(path, resource_type="ImagingStudy", interaction="search", hold_gc=page_gc)
            if first_page.get("resourceType") != "Bundle":
                raise FhirBadContent("ImagingStudy", "search", "wrong-resource-type",
                                     found=str(first_page.get("resourceType"))[:64],
                                     outcome=outcome_text(first_page))
        except BaseException:
            for future in (banner_future, reports_future):
                if future is not None:
                    future.cancel()
            raise
        cursor = PageCursor(next_url=None, deadline=deadline)
        total = first_page.get("total")
        resources = _page_matches(client, first_page, cursor)
        url = client.absolute(path)
        _advance(client, cursor, url, first_page, limits)
        del first_page
        page = _keep(resources, patient_id, cursor, limits)
        del resources
    banner, banner_problem = _banner(banner_future, patient_id) if banner_future is not None else (None, None)
    reports, reports_problem = _reports(reports_future) if reports_future is not None else ([], REPORTS_NOT_GRANTED)
    study_list = StudyList(
        studies=newest_first(page.studies), banner=banner, banner_problem=banner_problem,
        incomplete=cursor.incomplete, warnings=list(cursor.warnings), excluded=page.excluded,
        total=total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None,
        fetched_at=time.time(), reports=reports, reports_problem=reports_problem)
    return study_list, cursor


def fetch_next_page(client: FhirClient, cursor: PageCursor, patient_id: str, limits: StudyListLimits) -> PageStudies:
    """Read the page at ``cursor.next_url`` and advance the cursor; ``cursor.incomplete`` says why paging stopped.

    A later page that fails (HTTP error, not a Bundle, a timeout) ends paging with ``incomplete`` set and
    no studies; :class:`FhirUnauthorized` is raised with the cursor unchanged, so that the caller can renew
    the token and call again (SMART 2.2 §Refresh access token). Requires ``cursor.more``.
    """
    url = cursor.next_url
    assert url is not None
    with ExitStack() as page_gc:  # the collector paused from decoding until the page is dropped
        try:
            bundle = client.get_json(url, resource_type="ImagingStudy", interaction="search", hold_gc=page_gc)
        except FhirUnauthorized:
            raise
        except (FhirError, OutboundError) as exc:
            cursor.incomplete = f"page {cursor.pages + 1} could not be read ({_short_reason(exc)})"
            cursor.next_url = None
            return PageStudies([])
        cursor.pages += 1
        if bundle.get("resourceType") != "Bundle":
            cursor.incomplete = f"page {cursor.pages} was not a Bundle"
            cursor.next_url = None
            return PageStudies([])
        resources = _page_matches(client, bundle, cursor)
        _advance(client, cursor, url, bundle, limits)
        del bundle
        page = _keep(resources, patient_id, cursor, limits)
        del resources
    return page


def extended(study_list: StudyList, page: PageStudies, cursor: PageCursor) -> StudyList:
    """``study_list`` with ``page``'s studies (newest first overall), warnings and exclusions, and the
    cursor's ``incomplete``; ``fetched_at`` now. ``loading`` is left as it is (the caller settles it)."""
    return replace(study_list, studies=newest_first([*study_list.studies, *page.studies]),
                   excluded=study_list.excluded + page.excluded, warnings=list(cursor.warnings),
                   incomplete=study_list.incomplete or cursor.incomplete, fetched_at=time.time())


def fetch_study_list(client: FhirClient, patient_id: str, limits: StudyListLimits, executor: Executor, *,
                     want_banner: bool, want_reports: bool = False) -> StudyList:
    """Search the patient's ImagingStudy resources (every page, bounded) and read the Patient for the banner.

    :func:`fetch_first_page`, then :func:`fetch_next_page` until the cursor stops. Raises the first page's
    :mod:`app.fhir.errors` / transport facts; :class:`FhirUnauthorized` on any page.
    """
    study_list, cursor = fetch_first_page(client, patient_id, limits, executor, want_banner=want_banner,
                                          want_reports=want_reports)
    while cursor.more:
        study_list = extended(study_list, fetch_next_page(client, cursor, patient_id, limits), cursor)
    return study_list
