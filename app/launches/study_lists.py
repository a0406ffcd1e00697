"""The launch's study list: from the launch's cache while fresh, else fetched from the EHR with the launch's token."""

from __future__ import annotations

import time
from concurrent.futures import Executor

from ..fhir.client import FhirClient
from ..fhir.reports import pdf_bytes, report_subject
from ..fhir.endpoints import IncludedEndpoints
from ..fhir.errors import FhirHttpError, FhirUnauthorized
from ..fhir.study_list import StudyList, StudyListLimits, fetch_study_list
from ..smart.scopes import allows_search
from .bulkheads import EhrBulkheads
from .context import LaunchContext
from .images import LaunchImages, attach_endpoints
from .qido_list import FALLBACK_STATUSES, fetch_qido_study_list, qido_configured


def load_study_list(context: LaunchContext, executor: Executor, *, force: bool = False,
                    images: LaunchImages | None = None,
                    bulkheads: EhrBulkheads | None = None) -> tuple[StudyList, bool]:
    """``(study_list, fetched)``: the cached list when younger than ``fhir.study_list_ttl_seconds``, else fetched.

    A 401 renews the token once (:meth:`LaunchContext.with_token`). When
    ``fetched``, the caller keeps it with :meth:`LaunchContext.keep_study_list`
    (after the response is sent: the clinician does not wait for it). Raises
    the facts of :func:`~app.fhir.study_list.fetch_study_list` and
    :class:`~app.launches.errors.AuthorizationExpired`.

    With ``images`` (:class:`~app.launches.images.LaunchImages`): the studies' Endpoints are resolved
    (:func:`~app.launches.images.attach_endpoints`), and when the ImagingStudy search answers 404/405/501
    and the registration maps patient identifiers to a DICOMweb service, the list comes from QIDO-RS
    (:func:`~app.launches.qido_list.fetch_qido_study_list`).

    With ``bulkheads``, the fetch holds one of the EHR's slots (:mod:`app.launches.bulkheads`;
    :class:`~app.launches.errors.EhrBusy` when none frees in time).
    """
    fhir = context.settings.fhir
    ref = context.state.list_ref  # judged before the list is read: a stale list is never opened
    if ref is not None and not force and time.time() - ref.fetched_at < fhir.study_list_ttl_seconds:
        cached = context.state.study_list
        if cached is not None:
            return cached, False
    limits = StudyListLimits(page_size=fhir.page_size, max_pages=fhir.max_pages, max_studies=fhir.max_studies,
                             deadline_seconds=fhir.list_deadline_seconds)
    state = context.state
    want_banner = state.grant.need_patient_banner
    want_reports = allows_search(state.grant.scope, "DiagnosticReport")

    def fetch(token: str) -> StudyList:
        included = IncludedEndpoints() if images is not None else None
        client = FhirClient(state.iss, token, context.outbound, included=included)
        try:
            study_list = fetch_study_list(client, state.patient, limits, executor, want_banner=want_banner,
                                          want_reports=want_reports)
        except FhirUnauthorized:
            raise
        except FhirHttpError as exc:
            if images is None or exc.resource_type != "ImagingStudy" or exc.status not in FALLBACK_STATUSES \
                    or not qido_configured(context.ehr.dicomweb):
                raise
            return fetch_qido_study_list(context, client, images, limits, executor, want_banner=want_banner)
        if images is None:
            return study_list
        return attach_endpoints(study_list, included, client, context.ehr, images.endpoint_reader)

    if bulkheads is None:
        return context.with_token(fetch), True
    with bulkheads.slot(state.iss, retry_after=int(fhir.deadline_seconds)):
        return context.with_token(fetch), True


def report_pdf_bytes(context: LaunchContext, report_id: str, index: int) -> bytes | None:
    """The PDF of ``DiagnosticReport/<report_id>`` (``presentedForm[index]``), read with the launch's token;
    ``None`` when the report is not the launch patient's or holds no valid PDF there."""
    state = context.state
    resource = context.with_token(lambda token: FhirClient(state.iss, token, context.outbound).read(
        "DiagnosticReport", report_id))
    if report_subject(resource) != state.patient:
        return None
    return pdf_bytes(resource, index)
