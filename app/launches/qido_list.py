"""The study list from QIDO-RS when the EHR offers no ImagingStudy search.

Used when the registration has ``dicomweb`` with ``patient_identifiers`` (:func:`qido_configured`) and the
EHR offers no ImagingStudy search: its CapabilityStatement (``{iss}/metadata``, :mod:`app.fhir.capabilities`)
declares no ``search-type`` interaction for ImagingStudy, or the search answers 404, 405 or 501 (no such type
or interaction, FHIR R4 §3.1.0.4.2). :func:`first_page_or_qido` makes that choice. The launch patient
is read (``Patient/{id}``, also the banner); the first identifier whose ``system`` is mapped gives
``PatientID`` (0010,0020) and its ``IssuerOfPatientID`` (0010,0021); then

``GET {dicomweb.base_url}/studies?PatientID={value}&IssuerOfPatientID={issuer}&includefield=…&limit=…``

(DICOM PS3.18 §10.6.1, with the credentials :func:`app.dicomweb.access.access_for` gives). Each match
becomes a :class:`~app.fhir.imaging.StudySummary` (``id`` = Study Instance UID, ``source`` ``"qido"``,
``dicomweb_base`` the service). A match whose PatientID or IssuerOfPatientID (absent counts as
different) is not the launch patient's is dropped and counted in ``excluded``. A notice in
``warnings`` says where the list came from.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable

from ..config import DicomwebSettings
from ..dicomweb.errors import DicomwebError, DicomwebHttpError
from ..dicomweb.qido import STUDY_INCLUDE_FIELDS, read_study
from ..fhir.capabilities import ServerCapabilities
from ..fhir.client import FhirClient
from ..fhir.errors import FhirError, FhirHttpError, FhirUnauthorized
from ..fhir.imaging import StudySummary, newest_first, started_sort_key
from ..fhir.patient import banner_from_resource
from ..fhir.study_list import PageCursor, StudyList, StudyListLimits
from ..outbound import OutboundError, UpstreamTimeout
from ..urls import origin_string
from .context import LaunchContext
from .images import LaunchImages

FALLBACK_STATUSES = frozenset({404, 405, 501})
MAX_QIDO_STUDIES = 1000
CAPABILITY_WAIT_SECONDS = 2.0
"""How long a list whose first ImagingStudy page is in waits for a ``metadata`` answer still in flight; after
that the search alone decides (the answer is still cached for the next launches)."""
QIDO_MATCHING_CHARACTERS = frozenset("*?\\")


def qido_configured(dicomweb: DicomwebSettings | None) -> bool:
    """The registration can list studies from QIDO-RS (a DICOMweb base with a patient-identifier mapping)."""
    return dicomweb is not None and bool(dicomweb.patient_identifiers)


def patient_key(patient: dict, dicomweb: DicomwebSettings) -> tuple[str, str] | None:
    """``(PatientID, IssuerOfPatientID)`` from the first ``Patient.identifier`` whose system is mapped (in the
    order of the mapping), else ``None``.

    A value holding a DICOM matching character is never used: PatientID is LO, so QIDO-RS takes ``*`` and ``?``
    as wild cards (PS3.4 §C.2.2.2.4) and ``\\`` as a value separator (§C.2.2.2.1 list matching); either would
    widen the search to other patients (Orthanc does). Nor are control characters."""
    identifiers = [i for i in patient.get("identifier") or [] if isinstance(i, dict)] \
        if isinstance(patient.get("identifier"), list) else []
    for mapping in dicomweb.patient_identifiers:
        for identifier in identifiers:
            value = identifier.get("value")
            if identifier.get("system") == mapping.system and isinstance(value, str) and 0 < len(value) <= 64 \
                    and value.isprintable() and not set(value) & QIDO_MATCHING_CHARACTERS:
                return value, mapping.issuer_of_patient_id
    return None


def fetch_qido_study_list(context: LaunchContext, client: FhirClient, images: LaunchImages, limits: StudyListLimits,
                          executor: Executor | None = None, *, want_banner: bool) -> StudyList:
    """The launch patient's studies from QIDO-RS (module doc). Raises the Patient read's FHIR facts
    (:class:`~app.fhir.errors.FhirUnauthorized` so the caller renews); a DICOMweb failure gives an empty list
    with ``incomplete`` saying why."""
    dicomweb = context.ehr.dicomweb
    assert dicomweb is not None
    patient_id = context.state.patient
    patient = client.read("Patient", patient_id)
    banner = None
    if want_banner:
        try:
            banner = banner_from_resource(patient, patient_id)
        except ValueError:
            banner = None
    where = origin_string(dicomweb.base_url)
    notice = f"The EHR offers no ImagingStudy search; these studies come from the PACS at {where} (DICOMweb QIDO-RS)."
    result = StudyList(studies=[], banner=banner, banner_problem=None if banner or not want_banner else
                       "The patient's details could not be read.", warnings=[notice], fetched_at=time.time())
    key = patient_key(patient, dicomweb)
    if key is None:
        result.incomplete = "the patient has no identifier the PACS is searched by"
        return result
    service = images.service(context, dicomweb.base_url)
    if service is None:
        result.incomplete = "the app has no credentials for the PACS"
        return result
    patient_value, issuer = key
    try:
        matches = service.search_studies([("PatientID", patient_value), ("IssuerOfPatientID", issuer)],
                                         include_fields=STUDY_INCLUDE_FIELDS,
                                         limit=min(limits.max_studies, MAX_QIDO_STUDIES))
    except DicomwebHttpError as exc:
        result.incomplete = f"the PACS answered HTTP {exc.status}"
        return result
    except DicomwebError:
        result.incomplete = "the PACS's answer could not be read"
        return result
    except OutboundError as exc:
        result.incomplete = "the PACS did not answer in time" if isinstance(exc, UpstreamTimeout) else \
            "the PACS could not be reached"
        return result
    kept: list[StudySummary] = []
    for item in matches:
        study = read_study(item)
        if study is None:
            continue
        if study.patient_id != patient_value or study.issuer_of_patient_id != issuer:
            result.excluded += 1
            continue
        kept.append(StudySummary(
            id=study.study_instance_uid, study_instance_uid=study.study_instance_uid, viewer_problem=None,
            started=study.started, started_sort=started_sort_key(study.started), modalities=study.modalities,
            description=study.description, accession_number=study.accession_number,
            number_of_series=study.number_of_series, number_of_instances=study.number_of_instances,
            status="available", dicomweb_base=dicomweb.base_url, source="qido"))
    result.studies = newest_first(kept)
    result.total = len(result.studies)
    if len(matches) >= min(limits.max_studies, MAX_QIDO_STUDIES):
        result.incomplete = f"the app asks the PACS for at most {min(limits.max_studies, MAX_QIDO_STUDIES)} studies"
    return result


def _undeclared(future: "Future[ServerCapabilities | None]", wait_seconds: float) -> bool:
    """The CapabilityStatement is readable and declares no ImagingStudy search (``False`` when unreadable or
    not in within ``wait_seconds``)."""
    try:
        capabilities = future.result(timeout=wait_seconds)
    except (FutureTimeout, Exception):  # noqa: BLE001 - an unreadable or slow answer never breaks the list
        return False
    return capabilities is not None and not capabilities.offers_search("ImagingStudy")


def first_page_or_qido(context: LaunchContext, client: FhirClient, images: LaunchImages | None,
                       limits: StudyListLimits, executor: Executor,
                       first_page: Callable[[], tuple[StudyList, PageCursor]], *,
                       want_banner: bool) -> tuple[StudyList, PageCursor | None]:
    """``first_page()`` (the first ImagingStudy page and its cursor), or the QIDO-RS list (cursor ``None``)
    when the EHR offers no ImagingStudy search (module doc).

    Round trips: without ``images`` or :func:`qido_configured`, exactly ``first_page()`` (no ``metadata``
    request). Otherwise ``{iss}/metadata`` is looked up in ``images.capabilities`` (per ``iss``, TTL): a
    cached answer without ImagingStudy search goes to QIDO-RS at once (no search is sent); on a miss the
    request runs on ``executor`` *concurrently* with the first page, so the list costs no extra round trip
    (it waits at most :data:`CAPABILITY_WAIT_SECONDS` past the first page). An unreadable answer leaves the
    decision to the search: 404/405/501 go to QIDO-RS, any other failure is raised as before.
    :class:`~app.fhir.errors.FhirUnauthorized` is always raised (the caller renews the token).
    """
    if images is None or not qido_configured(context.ehr.dicomweb):
        return first_page()

    def qido() -> tuple[StudyList, None]:
        return fetch_qido_study_list(context, client, images, limits, executor, want_banner=want_banner), None

    capabilities = images.capabilities.lookup(context.state.iss, context.outbound, executor)
    if capabilities.done() and _undeclared(capabilities, 0):
        return qido()
    try:
        result = first_page()
    except FhirUnauthorized:
        raise
    except FhirHttpError as exc:
        if (exc.resource_type == "ImagingStudy" and exc.status in FALLBACK_STATUSES) or \
                _undeclared(capabilities, CAPABILITY_WAIT_SECONDS):
            return qido()
        raise
    except (FhirError, OutboundError):
        if _undeclared(capabilities, CAPABILITY_WAIT_SECONDS):
            return qido()
        raise
    if _undeclared(capabilities, CAPABILITY_WAIT_SECONDS):
        return qido()
    return result
