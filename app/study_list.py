"""The launch patient's study list: ImagingStudy search (all pages) and the Patient banner, cached per launch.

Request: ``GET {iss}/ImagingStudy?patient={id}&_sort=-started&_count={page_size}``
(FHIR R4 ImagingStudy search parameters ``patient``, ``started``); the
``Patient/{id}`` read for the banner runs concurrently with the first page, so
a warm list costs one FHIR round trip plus one per further page.
A re-opened list is served from the launch's cache for ``study_list_ttl_seconds``
(the "Refresh" button re-queries the EHR).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from urllib.parse import urlencode

from .errors import AppError, ImagingScopeNotGranted, SessionExpired
from .fhir import FhirClient, FhirUnauthorized
from .imaging import StudySummary, newest_first, summarize
from .launch_context import LaunchContext
from .patient import PatientBanner, banner_from_resource

log = logging.getLogger(__name__)


@dataclass
class StudyList:
    """What the list page shows.

    ``incomplete``: why some pages could not be read (shown as a notice);
    ``warnings``: OperationOutcome texts; ``excluded``: studies dropped because
    they named another patient; ``fetched_at``: epoch seconds.
    """

    studies: list[StudySummary]
    banner: PatientBanner | None
    banner_problem: str | None = None
    incomplete: str | None = None
    warnings: list[str] = field(default_factory=list)
    excluded: int = 0
    total: int | None = None
    pages: int = 0
    fetched_at: float = 0.0

    def to_dict(self) -> dict:
        """JSON-able form for the launch store."""
        return {"studies": [s.to_dict() for s in self.studies],
                "banner": self.banner.to_dict() if self.banner else None,
                "banner_problem": self.banner_problem, "incomplete": self.incomplete,
                "warnings": self.warnings, "excluded": self.excluded, "total": self.total,
                "pages": self.pages, "fetched_at": self.fetched_at}

    @classmethod
    def from_dict(cls, data: dict) -> "StudyList":
        """Inverse of :meth:`to_dict`."""
        return cls(studies=[StudySummary.from_dict(s) for s in data["studies"]],
                   banner=PatientBanner(**data["banner"]) if data.get("banner") else None,
                   banner_problem=data.get("banner_problem"), incomplete=data.get("incomplete"),
                   warnings=list(data.get("warnings") or ()), excluded=data.get("excluded", 0),
                   total=data.get("total"), pages=data.get("pages", 0), fetched_at=data.get("fetched_at", 0.0))

    def find(self, study_id: str) -> StudySummary | None:
        """The study with FHIR id ``study_id`` in this list, else ``None``."""
        return next((s for s in self.studies if s.id == study_id), None)


def search_path(patient_id: str, page_size: int) -> str:
    """Relative search URL for the launch patient's studies, newest first."""
    return "ImagingStudy?" + urlencode({"patient": patient_id, "_sort": "-started", "_count": page_size})


def _subject_id(resource: dict) -> str | None:
    reference = (resource.get("subject") or resource.get("patient") or {}).get("reference")
    if not isinstance(reference, str) or "/" not in reference:
        return None
    parts = reference.rstrip("/").split("/")
    return parts[-1] if len(parts) >= 2 and parts[-2] == "Patient" else None


def _fetch(context: LaunchContext, access_token: str, executor: Executor) -> StudyList:
    settings = context.settings.fhir
    client = FhirClient(context.iss, access_token, context.session)
    patient_id = context.patient_id
    path = search_path(patient_id, settings.page_size)
    want_banner = context.grant.need_patient_banner
    banner_future = executor.submit(client.get_json, f"Patient/{patient_id}", what="the patient read") \
        if want_banner else None
    first_page = client.get_json(path, what="the imaging study search")
    result = client.search("ImagingStudy", path, max_pages=settings.max_pages, first_page=first_page,
                           what="the imaging study search")
    kept, excluded = [], 0
    for resource in result.resources:
        subject = _subject_id(resource)
        if subject is not None and subject != patient_id:
            excluded += 1  # a server bug must not show another patient's study
            continue
        kept.append(summarize(resource))
    banner, banner_problem = None, None
    if banner_future is not None:
        try:
            banner = banner_from_resource(banner_future.result(), patient_id)
        except FhirUnauthorized:
            raise
        except ImagingScopeNotGranted:
            banner_problem = "The EHR did not allow reading the patient's details."
        except (AppError, ValueError) as exc:
            banner_problem = "The patient's details could not be read."
            log.info("patient banner unavailable: %s", type(exc).__name__)
    return StudyList(studies=newest_first(kept), banner=banner, banner_problem=banner_problem,
                     incomplete=result.incomplete, warnings=result.warnings, excluded=excluded,
                     total=result.total, pages=result.pages, fetched_at=time.time())


def load_study_list(context: LaunchContext, executor: Executor, *,
                    force: bool = False) -> tuple[StudyList, bool]:
    """``(study_list, fetched)``: from the launch's cache when younger than the TTL, else fetched from the EHR.

    A 401 refreshes the token once. When ``fetched``, the caller stores the
    list with :func:`save_study_list` (after the response is sent: the
    clinician does not wait for it). Raises :class:`~app.errors.AppError`
    subclasses: SessionExpired, ImagingScopeNotGranted, UpstreamError.
    """
    ttl = context.settings.fhir.study_list_ttl_seconds
    cached = context.record.data.get("study_list")
    if cached and not force and time.time() - cached.get("fetched_at", 0) < ttl:
        return StudyList.from_dict(cached), False
    token = context.access_token()
    try:
        study_list = _fetch(context, token, executor)
    except FhirUnauthorized:
        token = context.refresh_after_failure(token)
        try:
            study_list = _fetch(context, token, executor)
        except FhirUnauthorized:
            raise SessionExpired("The FHIR server refused the renewed token.") from None
    return study_list, True


def save_study_list(context: LaunchContext, study_list: StudyList) -> None:
    """Keep ``study_list`` in the launch's record (skipped if another request changed the record meanwhile)."""
    context.record.data["study_list"] = study_list.to_dict()
    if not context.store.update(context.record):
        log.debug("study list cache not written: launch updated concurrently")
