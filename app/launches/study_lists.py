"""The launch's study list: from the launch's cache while fresh, else fetched from the EHR with the launch's token."""

from __future__ import annotations

import time
from concurrent.futures import Executor

from ..fhir.client import FhirClient
from ..fhir.reports import pdf_bytes, report_subject
from ..fhir.study_list import StudyList, StudyListLimits, fetch_study_list
from ..smart.scopes import allows_search
from .context import LaunchContext


def load_study_list(context: LaunchContext, executor: Executor, *, force: bool = False) -> tuple[StudyList, bool]:
    """``(study_list, fetched)``: the cached list when younger than ``fhir.study_list_ttl_seconds``, else fetched.

    A 401 renews the token once (:meth:`LaunchContext.with_token`). When
    ``fetched``, the caller keeps it with :meth:`LaunchContext.keep_study_list`
    (after the response is sent: the clinician does not wait for it). Raises
    the facts of :func:`~app.fhir.study_list.fetch_study_list` and
    :class:`~app.launches.errors.AuthorizationExpired`.
    """
    fhir = context.settings.fhir
    cached = context.state.study_list
    if cached is not None and not force and time.time() - cached.fetched_at < fhir.study_list_ttl_seconds:
        return cached, False
    limits = StudyListLimits(page_size=fhir.page_size, max_pages=fhir.max_pages, max_studies=fhir.max_studies,
                             deadline_seconds=fhir.list_deadline_seconds)
    state = context.state
    study_list = context.with_token(lambda token: fetch_study_list(
        FhirClient(state.iss, token, context.outbound), state.patient, limits, executor,
        want_banner=state.grant.need_patient_banner,
        want_reports=allows_search(state.grant.scope, "DiagnosticReport")))
    return study_list, True


def report_pdf_bytes(context: LaunchContext, report_id: str, index: int) -> bytes | None:
    """The PDF of ``DiagnosticReport/<report_id>`` (``presentedForm[index]``), read with the launch's token;
    ``None`` when the report is not the launch patient's or holds no valid PDF there."""
    state = context.state
    resource = context.with_token(lambda token: FhirClient(state.iss, token, context.outbound).read(
        "DiagnosticReport", report_id))
    if report_subject(resource) != state.patient:
        return None
    return pdf_bytes(resource, index)
