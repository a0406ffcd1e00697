"""The launch patient's study list: ImagingStudy search (all pages) and the Patient banner.

Request: ``GET {iss}/ImagingStudy?patient={id}&_sort=-started&_count={page_size}``
(FHIR R4 ImagingStudy search parameters ``patient``, ``started``); the
``Patient/{id}`` read for the banner and, when the granted scope allows it, the
``DiagnosticReport?patient={id}`` search run concurrently with the first page, so
a list costs one FHIR round trip plus one per further page. Summaries are
built page by page (raw pages are not kept), at most ``max_studies`` of them.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from ..outbound import OutboundError
from .client import FhirClient
from .errors import FhirError, FhirHttpError, FhirUnauthorized
from .imaging import SUMMARY_FIELDS, StudySummary, newest_first, summarize
from .patient import PatientBanner, banner_from_resource
from .reports import ReportSummary, report_subject, summarize_report

REPORTS_NOT_GRANTED = "Reports are not available to this app (the EHR did not grant DiagnosticReport access)."
REPORTS_FAILED = "The reports could not be read from the EHR."

log = logging.getLogger(__name__)


@dataclass
class StudyList:
    """What the list page shows.

    ``incomplete``: why some studies could not be read (shown as a notice);
    ``warnings``: OperationOutcome texts; ``excluded``: studies dropped because
    they named another patient; ``total``: ``Bundle.total`` when given;
    ``fetched_at``: epoch seconds.
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

    def to_json(self) -> dict[str, Any]:
        """JSON-able form for the launch store: studies as rows (:meth:`StudySummary.to_row`) under one
        ``study_fields`` list of names."""
        return {"study_fields": list(SUMMARY_FIELDS), "studies": [s.to_row() for s in self.studies],
                "banner": self.banner.to_json() if self.banner else None,
                "banner_problem": self.banner_problem, "incomplete": self.incomplete,
                "warnings": self.warnings, "excluded": self.excluded, "total": self.total,
                "fetched_at": self.fetched_at, "reports": [r.to_json() for r in self.reports],
                "reports_problem": self.reports_problem}

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
                   reports_problem=data.get("reports_problem"))

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


def fetch_study_list(client: FhirClient, patient_id: str, limits: StudyListLimits, executor: Executor, *,
                     want_banner: bool, want_reports: bool = False) -> StudyList:
    """Search the patient's ImagingStudy resources (every page, bounded) and read the Patient for the banner.

    ``want_reports``: the granted scope allows searching DiagnosticReport (searched
    concurrently; else ``reports_problem`` says reports are not available).
    Studies naming another patient are dropped and counted (a server bug must
    not show another patient's study). Raises the first page's
    :mod:`app.fhir.errors` / transport facts; :class:`FhirUnauthorized` on any page.
    """
    path = search_path(patient_id, limits.page_size)
    deadline = time.monotonic() + limits.deadline_seconds
    banner_future = executor.submit(client.read, "Patient", patient_id) if want_banner else None
    reports_future = executor.submit(fetch_reports, client, patient_id, limits, deadline) if want_reports else None
    try:
        first_page = client.get_json(path, resource_type="ImagingStudy", interaction="search")
    except BaseException:
        for future in (banner_future, reports_future):
            if future is not None:
                future.cancel()
        raise
    search = client.search("ImagingStudy", path, max_pages=limits.max_pages, first_page=first_page, deadline=deadline)
    del first_page
    kept: list[StudySummary] = []
    excluded = 0
    incomplete = None
    for resource in search:
        subject = subject_id(resource)
        if subject is not None and subject != patient_id:
            excluded += 1
            continue
        if len(kept) >= limits.max_studies:
            incomplete = f"the app shows at most {limits.max_studies} studies"
            break
        kept.append(summarize(resource))
    banner, banner_problem = _banner(banner_future, patient_id) if banner_future is not None else (None, None)
    reports, reports_problem = _reports(reports_future) if reports_future is not None else ([], REPORTS_NOT_GRANTED)
    return StudyList(studies=newest_first(kept), banner=banner, banner_problem=banner_problem,
                     incomplete=incomplete or search.incomplete, warnings=search.warnings, excluded=excluded,
                     total=search.total, fetched_at=time.time(), reports=reports, reports_problem=reports_problem)
