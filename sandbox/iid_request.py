"""IHE RAD-106 Invoke Image Display request parameters (IHE RAD TF-2 §4.106.4.1.2).

Supported: ``requestType=STUDY`` with ``studyUID`` *or* ``accessionNumber``
(comma-separated lists, never both), ``requestType=PATIENT`` with ``patientID``
(HL7 v2 CX: ``<id>^^^&<universal id>&ISO``) and the optional filters
``lowerDateTime``, ``upperDateTime`` (ISO 8601), ``mostRecentResults`` (integer
>= 1) and ``modalitiesInStudy`` (comma-separated DICOM modality codes); plus
``viewerType``, ``diagnosticQuality`` and ``keyImagesOnly`` (``true``/``false``).
Other parameters are ignored, as the profile asks of an Image Display.

Patient ids: the assigning authority must be this sandbox's patient-id issuer
:data:`sandbox.records.PATIENT_ID_ISSUER_OID`; the id may be the FHIR Patient
id (``pt-1001``) or the MRN (``M0041001``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from .demo_studies import SITE_TIMEZONE
from .records import PATIENT_ID_ISSUER_OID

REQUEST_TYPES = ("STUDY", "PATIENT")
UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
MODALITY_RE = re.compile(r"^[A-Z0-9_]{1,16}$")


class IIDRequestError(ValueError):
    """Invalid RAD-106 request; ``status`` is the HTTP status of the error page (400 or 404)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class IIDRequest:
    """A validated RAD-106 request."""

    request_type: str
    study_instance_uids: list[str] = field(default_factory=list)
    accession_numbers: list[str] = field(default_factory=list)
    patient_id: str | None = None
    lower_datetime: datetime | None = None
    upper_datetime: datetime | None = None
    most_recent_results: int | None = None
    modalities_in_study: list[str] = field(default_factory=list)
    viewer_type: str = "IHE_BIR"
    diagnostic_quality: bool = False
    key_images_only: bool = False


def is_dicom_uid(value: str) -> bool:
    """True for a syntactically valid DICOM UID (PS3.5 §9.1: digits and dots, <= 64 chars)."""
    return len(value) <= 64 and bool(UID_RE.match(value))


def _list(value: str, name: str) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    if not items or any(not item for item in items):
        raise IIDRequestError(f"{name} must be a non-empty comma-separated list")
    return items


def _bool(args, name: str) -> bool:
    value = args.get(name)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise IIDRequestError(f"{name} must be 'true' or 'false'")
    return value == "true"


def _datetime(args, name: str) -> datetime | None:
    value = args.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "+").replace("Z", "+00:00"))
    except ValueError:
        raise IIDRequestError(f"{name} must be an ISO 8601 date-time such as 2020-01-31T00:00:00") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=SITE_TIMEZONE)


def parse_patient_cx(value: str) -> str:
    """Return the id of an HL7 v2 CX ``id^^^&<oid>&ISO`` issued by this sandbox.

    Raises :class:`IIDRequestError` when the id or the assigning authority is
    missing, or the authority is not :data:`PATIENT_ID_ISSUER_OID`.
    """
    components = value.split("^")
    patient_id = components[0].strip()
    if not patient_id:
        raise IIDRequestError("patientID has no identifier value")
    authority = components[3] if len(components) > 3 else ""
    parts = authority.split("&")
    if len(parts) != 3 or not parts[1]:
        raise IIDRequestError(
            f"patientID must carry an assigning authority: {patient_id}^^^&{PATIENT_ID_ISSUER_OID}&ISO"
        )
    if parts[1] != PATIENT_ID_ISSUER_OID or parts[2] != "ISO":
        raise IIDRequestError(f"unknown assigning authority {parts[1]!r} in patientID")
    return patient_id


def parse_iid_request(args) -> IIDRequest:
    """Validate the query *args* of ``GET /IHEInvokeImageDisplay``; raises :class:`IIDRequestError`."""
    request_type = args.get("requestType")
    if not request_type:
        raise IIDRequestError("missing requestType (STUDY or PATIENT)")
    if request_type not in REQUEST_TYPES:
        raise IIDRequestError(f"unsupported requestType {request_type!r} (STUDY or PATIENT)")
    request = IIDRequest(request_type=request_type)
    request.viewer_type = args.get("viewerType") or "IHE_BIR"
    request.diagnostic_quality = _bool(args, "diagnosticQuality")
    request.key_images_only = _bool(args, "keyImagesOnly")
    if request_type == "STUDY":
        has_uid, has_accession = "studyUID" in args, "accessionNumber" in args
        if has_uid and has_accession:
            raise IIDRequestError("give either studyUID or accessionNumber, not both")
        if not has_uid and not has_accession:
            raise IIDRequestError("requestType=STUDY needs studyUID or accessionNumber")
        if has_uid:
            request.study_instance_uids = _list(args["studyUID"], "studyUID")
            bad = [uid for uid in request.study_instance_uids if not is_dicom_uid(uid)]
            if bad:
                raise IIDRequestError(f"studyUID {bad[0]!r} is not a DICOM UID")
        else:
            request.accession_numbers = _list(args["accessionNumber"], "accessionNumber")
        return request
    if not args.get("patientID"):
        raise IIDRequestError("requestType=PATIENT needs patientID")
    request.patient_id = parse_patient_cx(args["patientID"])
    request.lower_datetime = _datetime(args, "lowerDateTime")
    request.upper_datetime = _datetime(args, "upperDateTime")
    if request.lower_datetime and request.upper_datetime and request.lower_datetime > request.upper_datetime:
        raise IIDRequestError("lowerDateTime is after upperDateTime")
    if "mostRecentResults" in args:
        raw = args["mostRecentResults"]
        if not raw.isdigit() or int(raw) < 1:
            raise IIDRequestError("mostRecentResults must be a positive integer")
        request.most_recent_results = int(raw)
    if "modalitiesInStudy" in args:
        request.modalities_in_study = _list(args["modalitiesInStudy"], "modalitiesInStudy")
        bad = [m for m in request.modalities_in_study if not MODALITY_RE.match(m)]
        if bad:
            raise IIDRequestError(f"modalitiesInStudy: {bad[0]!r} is not a DICOM modality code")
    return request
