"""DICOMweb service of the sandbox PACS at ``{PUBLIC_BASE_URL}/dicomweb`` (DICOM PS3.18).

* QIDO-RS (PS3.18 §10.6): ``GET /studies``, ``/studies/{study}/series``,
  ``/studies/{study}/instances``, ``/studies/{study}/series/{series}/instances``
  — ``application/dicom+json`` arrays (PS3.18 Annex F, via pydicom's
  ``Dataset.to_json_dict``); ``200 []`` when nothing matches.
* WADO-RS metadata (§10.4): ``/studies/{study}/metadata``, series and instance level.
* Rendered (§10.4.1.1.3, §8.3.5): ``/studies/{s}/series/{se}/instances/{i}/rendered``
  and ``…/frames/{n}/rendered`` — ``image/jpeg`` (default) or ``image/png`` per
  ``Accept``; ``viewport=vw,vh`` scales the image to fit inside ``vw`` x ``vh``
  keeping its aspect ratio; ``quality=1..100`` (JPEG). An instance's rendering is
  its first frame.
* Thumbnail: ``/thumbnail`` at study, series, instance and frame level; the
  representative image is the first frame of the first instance of the first
  series, fitted into 128 x 128 unless ``viewport`` says otherwise.

Every request needs ``Authorization: Bearer <sandbox SMART access token>``
(missing, unknown or expired -> 401 with ``WWW-Authenticate``). The token's scope
must permit ImagingStudy search (QIDO-RS) or read (WADO-RS) — the DICOM studies
are the ImagingStudy resources — otherwise 403 ``insufficient_scope``. With
patient-level scopes only the launch patient's studies are visible: another
patient's study, or ``PatientID`` other than the patient's MRN -> 403. ``user/``
scopes see every patient. Unknown study/series/instance -> 404; an ``Accept`` that
allows none of the media types -> 406; unsupported query parameters -> 400.
Errors are ``application/json`` ``{"error": ..., "message": ...}``.

The PACS holds the studies the IID display shows: those with a Study Instance
UID and series, not ``cancelled`` or ``entered-in-error``.
"""

from __future__ import annotations

import fnmatch
import io
import re
import time
from functools import lru_cache
from typing import Iterable

from flask import Blueprint, Response, json, request
from PIL import Image
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset as DicomDataset

from .dicom_instances import DICOM_SEX, instance_header, patient_name, study_date_time
from .dicom_source import read_header
from .records import NOT_IN_PACS, PATIENT_ID_ISSUER_OID, InstanceRecord, SeriesRecord, StudyRecord
from .render import FrameOutOfRange, render_png
from .scopes import permitting_levels
from .state import get_state

bp = Blueprint("dicomweb", __name__, url_prefix="/dicomweb")

DICOM_JSON = "application/dicom+json"
JSON_TYPES = (DICOM_JSON, "application/json")
IMAGE_TYPES = ("image/jpeg", "image/png")
THUMBNAIL_SIZE = (128, 128)
MAX_VIEWPORT = 4096
CAPABILITY = "smart-imaging-access"

# Attributes returned by default (PS3.18 Table 10.6.3-3/-4/-5), plus those any
# ``includefield`` may add (``all`` adds every optional one).
STUDY_DEFAULT = ("SpecificCharacterSet", "StudyDate", "StudyTime", "AccessionNumber", "InstanceAvailability",
                 "ModalitiesInStudy", "ReferringPhysicianName", "TimezoneOffsetFromUTC", "RetrieveURL",
                 "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
                 "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")
STUDY_OPTIONAL = ("StudyDescription", "IssuerOfPatientID")
SERIES_DEFAULT = ("SpecificCharacterSet", "Modality", "TimezoneOffsetFromUTC", "SeriesDescription", "RetrieveURL",
                  "SeriesInstanceUID", "SeriesNumber", "NumberOfSeriesRelatedInstances")
SERIES_OPTIONAL = ("BodyPartExamined", "StudyInstanceUID")
INSTANCE_DEFAULT = ("SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "InstanceAvailability",
                    "TimezoneOffsetFromUTC", "RetrieveURL", "InstanceNumber", "Rows", "Columns", "NumberOfFrames")
INSTANCE_OPTIONAL = ("StudyInstanceUID", "SeriesInstanceUID")

STUDY_MATCHING = ("PatientID", "IssuerOfPatientID", "StudyInstanceUID", "AccessionNumber", "ModalitiesInStudy",
                  "StudyDate")
SERIES_MATCHING = ("SeriesInstanceUID", "Modality", "SeriesNumber")
INSTANCE_MATCHING = ("SOPInstanceUID", "SOPClassUID", "InstanceNumber")
QUERY_CONTROLS = ("includefield", "limit", "offset", "fuzzymatching")


class DicomWebError(Exception):
    """An error answered as ``application/json`` ``{"error", "message"}`` with *status*."""

    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.error, self.message, self.headers = status, error, message, headers or {}


@bp.errorhandler(DicomWebError)
def _dicomweb_error(error: DicomWebError):
    body = json.dumps({"error": error.error, "message": error.message})
    return Response(body, status=error.status, headers=error.headers, content_type="application/json")


def dicomweb_base_url(public_base_url: str) -> str:
    """The DICOMweb base (QIDO-RS, WADO-RS): ``PUBLIC_BASE_URL + "/dicomweb"``."""
    return public_base_url + "/dicomweb"


def associated_endpoints(public_base_url: str) -> list[dict]:
    """SMART 2.2 ``associated_endpoints`` entry: the DICOMweb base shares this server's tokens."""
    return [{"url": dicomweb_base_url(public_base_url), "capabilities": [CAPABILITY]}]


# --------------------------------------------------------------------------- access
def _unauthorized(description: str) -> DicomWebError:
    header = f'Bearer realm="sandbox-ehr", error="invalid_token", error_description="{description}"'
    return DicomWebError(401, "invalid_token", description, {"WWW-Authenticate": header})


def authorize(interaction: str) -> str | None:
    """Check the bearer token for ImagingStudy *interaction* (``search``/``read``).

    Returns the compartment patient id, or None for ``user/`` scopes (any patient).
    Raises :class:`DicomWebError` 401/403. Applies the launch's ``delay_ms`` fault.
    """
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _unauthorized("missing bearer token")
    record = get_state().oauth.store.find_access_token(value.strip())
    if record is None:
        raise _unauthorized("unknown or expired access token")
    if record.context.faults.delay_ms:
        time.sleep(record.context.faults.delay_ms / 1000)
    levels = permitting_levels(record.scope, "ImagingStudy", interaction)
    if not levels:
        letter = "s" if interaction == "search" else "r"
        raise DicomWebError(403, "insufficient_scope",
                            f"insufficient_scope: DICOMweb needs ImagingStudy {interaction} ({letter}) in the token's scope")
    if "user" in levels:
        return None
    patient = None if record.context.faults.no_patient else record.context.patient
    if patient is None:
        raise DicomWebError(403, "insufficient_scope", "insufficient_scope: patient-level scope but no patient in context")
    return patient


def held(study: StudyRecord) -> bool:
    """Whether the sandbox PACS holds *study* (UID, series, not cancelled / entered-in-error)."""
    return bool(study.study_instance_uid and study.series and study.status not in NOT_IN_PACS)


def _forbidden(compartment: str) -> DicomWebError:
    return DicomWebError(403, "forbidden", f"study is outside the patient compartment of this token ({compartment} only)")


def _study(uid: str, compartment: str | None) -> StudyRecord:
    study = get_state().dataset.study_by_uid(uid)
    if study is None or not held(study):
        raise DicomWebError(404, "not_found", f"no study {uid}")
    if compartment is not None and study.patient_id != compartment:
        raise _forbidden(compartment)
    return study


def _series(study: StudyRecord, uid: str) -> SeriesRecord:
    series = next((s for s in study.series if s.series_instance_uid == uid), None)
    if series is None:
        raise DicomWebError(404, "not_found", f"no series {uid} in study {study.study_instance_uid}")
    return series


def _instance(series: SeriesRecord, uid: str) -> InstanceRecord:
    instance = next((i for i in series.instances if i.sop_instance_uid == uid), None)
    if instance is None:
        raise DicomWebError(404, "not_found", f"no instance {uid} in series {series.series_instance_uid}")
    return instance


# --------------------------------------------------------------------------- responses
def _check_json_accept() -> None:
    if request.headers.get("Accept") and not any(request.accept_mimetypes[t] for t in JSON_TYPES):
        raise DicomWebError(406, "not_acceptable", f"this service answers {DICOM_JSON} only")


def dicom_json_response(items: list[dict]) -> Response:
    return Response(json.dumps(items, ensure_ascii=False), content_type=DICOM_JSON)


def _tag_keyword(name: str) -> str:
    """Keyword for a keyword or ``GGGGEEEE`` tag (400 if unknown to the DICOM dictionary)."""
    if re.fullmatch(r"[0-9A-Fa-f]{8}", name):
        keyword = keyword_for_tag(int(name, 16))
        if keyword:
            return keyword
    elif tag_for_keyword(name) is not None:
        return name
    raise DicomWebError(400, "bad_request", f"{name!r} is not a DICOM attribute keyword or tag")


class Query:
    """Validated QIDO-RS query parameters for one level."""

    def __init__(self, matching: tuple[str, ...], optional: tuple[str, ...]):
        self.filters: dict[str, str] = {}
        self.include: set[str] = set()
        self.limit: int | None = None
        self.offset = 0
        for name, value in request.args.items(multi=True):
            if name == "includefield":
                for item in filter(None, (v.strip() for v in value.split(","))):
                    self.include |= set(optional) if item == "all" else {_tag_keyword(item)}
            elif name in ("limit", "offset"):
                if not value.isdigit():
                    raise DicomWebError(400, "bad_request", f"{name} must be a non-negative integer")
                setattr(self, name, int(value))
            elif name == "fuzzymatching":
                if value not in ("true", "false"):
                    raise DicomWebError(400, "bad_request", "fuzzymatching must be true or false")
            else:
                keyword = _tag_keyword(name)
                if keyword not in matching:
                    raise DicomWebError(400, "bad_request",
                                        f"matching on {name} is not supported (supported: {', '.join(matching)})")
                if keyword in self.filters:
                    raise DicomWebError(400, "bad_request", f"{name} may appear only once")
                self.filters[keyword] = value

    def page(self, items: list) -> list:
        end = None if self.limit is None else self.offset + self.limit
        return items[self.offset:end]

    def attributes(self, default: tuple[str, ...]) -> set[str]:
        """Attributes to return: defaults, matching keys and ``includefield`` ones."""
        return set(default) | set(self.filters) | self.include


def _uid_list(value: str) -> list[str]:
    return [v for v in re.split(r"[,\\]", value) if v]


def _matches_text(pattern: str, value: str) -> bool:
    if "*" in pattern or "?" in pattern:
        return fnmatch.fnmatchcase(value, pattern)
    return pattern == value


def _matches_date(criterion: str, value: str) -> bool:
    if not re.fullmatch(r"(\d{8})?(-(\d{8})?)?", criterion) or criterion in ("", "-"):
        raise DicomWebError(400, "bad_request", f"StudyDate {criterion!r} is not YYYYMMDD or a range")
    if "-" not in criterion:
        return value == criterion
    low, _, high = criterion.partition("-")
    return bool(value) and (not low or value >= low) and (not high or value <= high)


def _to_json(values: dict, wanted: set[str]) -> dict:
    ds = DicomDataset()
    for keyword, value in values.items():
        if keyword in wanted:
            setattr(ds, keyword, value)
    return ds.to_json_dict()


# --------------------------------------------------------------------------- QIDO-RS
def _study_values(study: StudyRecord, base: str) -> dict:
    patient = get_state().dataset.patient(study.patient_id)
    date, time_, offset = study_date_time(study)
    values = {
        "SpecificCharacterSet": "ISO_IR 192",
        "StudyDate": date,
        "StudyTime": time_,
        "AccessionNumber": study.accession_number or "",
        "InstanceAvailability": "ONLINE",
        "ModalitiesInStudy": study.modalities,
        "ReferringPhysicianName": "",
        "RetrieveURL": f"{base}/studies/{study.study_instance_uid}",
        "PatientName": patient_name(patient),
        "PatientID": patient.mrn,
        "IssuerOfPatientID": PATIENT_ID_ISSUER_OID,
        "PatientBirthDate": patient.resource.get("birthDate", "").replace("-", ""),
        "PatientSex": DICOM_SEX.get(patient.resource.get("gender", ""), ""),
        "StudyInstanceUID": study.study_instance_uid,
        "StudyID": "",
        "StudyDescription": study.description or "",
        "NumberOfStudyRelatedSeries": len(study.series),
        "NumberOfStudyRelatedInstances": sum(len(s.instances) for s in study.series),
    }
    if offset:
        values["TimezoneOffsetFromUTC"] = offset
    return values


def _study_matches(values: dict, filters: dict[str, str]) -> bool:
    for keyword, criterion in filters.items():
        if keyword == "StudyInstanceUID":
            ok = values[keyword] in _uid_list(criterion)
        elif keyword == "ModalitiesInStudy":
            ok = bool(set(_uid_list(criterion)) & set(values[keyword]))
        elif keyword == "StudyDate":
            ok = _matches_date(criterion, values[keyword])
        else:
            ok = _matches_text(criterion, values[keyword])
        if not ok:
            return False
    return True


def _base() -> str:
    return dicomweb_base_url(get_state().config["PUBLIC_BASE_URL"])


@bp.get("/studies")
def search_studies():
    """QIDO-RS Search for Studies; newest first (undated last)."""
    compartment = authorize("search")
    _check_json_accept()
    query = Query(STUDY_MATCHING, STUDY_OPTIONAL)
    dataset = get_state().dataset
    if compartment is not None:
        mrn = dataset.patient(compartment).mrn
        wanted = query.filters.get("PatientID")
        if wanted is not None and wanted != mrn:
            raise _forbidden(compartment)
        for uid in _uid_list(query.filters.get("StudyInstanceUID", "")):
            other = dataset.study_by_uid(uid)
            if other is not None and other.patient_id != compartment:
                raise _forbidden(compartment)
        patients = [dataset.patient(compartment)]
    else:
        patients = dataset.patients()
    studies = [s for p in patients for s in p.studies if held(s)]
    dated = sorted((s for s in studies if s.started), key=lambda s: (s.started, s.id), reverse=True)
    studies = dated + sorted((s for s in studies if not s.started), key=lambda s: s.id)
    base = _base()
    wanted_attributes = query.attributes(STUDY_DEFAULT)
    results = []
    for study in studies:
        values = _study_values(study, base)
        if _study_matches(values, query.filters):
            results.append(_to_json(values, wanted_attributes))
    return dicom_json_response(query.page(results))


def _series_values(study: StudyRecord, series: SeriesRecord, base: str) -> dict:
    values = {
        "SpecificCharacterSet": "ISO_IR 192",
        "Modality": series.modality,
        "SeriesDescription": series.description or "",
        "RetrieveURL": f"{base}/studies/{study.study_instance_uid}/series/{series.series_instance_uid}",
        "SeriesInstanceUID": series.series_instance_uid,
        "SeriesNumber": series.number,
        "NumberOfSeriesRelatedInstances": len(series.instances),
        "BodyPartExamined": series.body_part or "",
        "StudyInstanceUID": study.study_instance_uid,
    }
    offset = study_date_time(study)[2]
    if offset:
        values["TimezoneOffsetFromUTC"] = offset
    return values


def _generic_matches(values: dict, filters: dict[str, str]) -> bool:
    for keyword, criterion in filters.items():
        value = values[keyword]
        if keyword.endswith("UID"):
            ok = value in _uid_list(criterion)
        elif isinstance(value, int):
            ok = criterion.isdigit() and int(criterion) == value
        else:
            ok = _matches_text(criterion, value)
        if not ok:
            return False
    return True


@bp.get("/studies/<study_uid>/series")
def search_series(study_uid: str):
    """QIDO-RS Search for Series of one study (series number order)."""
    study = _study(study_uid, authorize("search"))
    _check_json_accept()
    query = Query(SERIES_MATCHING, SERIES_OPTIONAL)
    base, wanted = _base(), query.attributes(SERIES_DEFAULT)
    results = [
        _to_json(values, wanted)
        for values in (_series_values(study, s, base) for s in sorted(study.series, key=lambda s: s.number))
        if _generic_matches(values, query.filters)
    ]
    return dicom_json_response(query.page(results))


def _instance_values(study: StudyRecord, series: SeriesRecord, instance: InstanceRecord, base: str) -> dict:
    header = read_header(instance.source_file)
    values = {
        "SpecificCharacterSet": "ISO_IR 192",
        "SOPClassUID": instance.sop_class_uid,
        "SOPInstanceUID": instance.sop_instance_uid,
        "InstanceAvailability": "ONLINE",
        "RetrieveURL": (f"{base}/studies/{study.study_instance_uid}/series/{series.series_instance_uid}"
                        f"/instances/{instance.sop_instance_uid}"),
        "InstanceNumber": instance.number,
        "Rows": header.rows,
        "Columns": header.columns,
        "NumberOfFrames": instance.frames,
        "StudyInstanceUID": study.study_instance_uid,
        "SeriesInstanceUID": series.series_instance_uid,
    }
    offset = study_date_time(study)[2]
    if offset:
        values["TimezoneOffsetFromUTC"] = offset
    return values


def _search_instances(study: StudyRecord, series_list: Iterable[SeriesRecord], extra_optional: tuple[str, ...] = ()):
    _check_json_accept()
    query = Query(INSTANCE_MATCHING, INSTANCE_OPTIONAL + extra_optional)
    base, wanted = _base(), query.attributes(INSTANCE_DEFAULT + extra_optional)
    results = []
    for series in series_list:
        for instance in sorted(series.instances, key=lambda i: i.number):
            values = _instance_values(study, series, instance, base)
            if _generic_matches(values, query.filters):
                results.append(_to_json(values, wanted))
    return dicom_json_response(query.page(results))


@bp.get("/studies/<study_uid>/series/<series_uid>/instances")
def search_series_instances(study_uid: str, series_uid: str):
    """QIDO-RS Search for Instances of one series (instance number order)."""
    study = _study(study_uid, authorize("search"))
    return _search_instances(study, [_series(study, series_uid)])


@bp.get("/studies/<study_uid>/instances")
def search_study_instances(study_uid: str):
    """QIDO-RS Search for Instances of one study (SeriesInstanceUID always returned)."""
    study = _study(study_uid, authorize("search"))
    return _search_instances(study, sorted(study.series, key=lambda s: s.number), ("SeriesInstanceUID",))


# --------------------------------------------------------------------------- WADO-RS metadata
def _metadata(study: StudyRecord, pairs: Iterable[tuple[SeriesRecord, InstanceRecord]]) -> Response:
    _check_json_accept()
    if request.args:
        raise DicomWebError(400, "bad_request", "metadata takes no query parameters")
    patient = get_state().dataset.patient(study.patient_id)
    items = [
        instance_header(patient, study, series, instance).to_json_dict(suppress_invalid_tags=True)
        for series, instance in pairs
    ]
    return dicom_json_response(items)


def _all_instances(series_list: Iterable[SeriesRecord]):
    return [(s, i) for s in sorted(series_list, key=lambda s: s.number) for i in sorted(s.instances, key=lambda i: i.number)]


@bp.get("/studies/<study_uid>/metadata")
def study_metadata(study_uid: str):
    """WADO-RS Retrieve Metadata of every instance of a study (no pixel data)."""
    study = _study(study_uid, authorize("read"))
    return _metadata(study, _all_instances(study.series))


@bp.get("/studies/<study_uid>/series/<series_uid>/metadata")
def series_metadata(study_uid: str, series_uid: str):
    """WADO-RS Retrieve Metadata of a series."""
    study = _study(study_uid, authorize("read"))
    return _metadata(study, _all_instances([_series(study, series_uid)]))


@bp.get("/studies/<study_uid>/series/<series_uid>/instances/<instance_uid>/metadata")
def instance_metadata(study_uid: str, series_uid: str, instance_uid: str):
    """WADO-RS Retrieve Metadata of one instance."""
    study = _study(study_uid, authorize("read"))
    series = _series(study, series_uid)
    return _metadata(study, [(series, _instance(series, instance_uid))])


# --------------------------------------------------------------------------- rendered, thumbnail
def _media_type() -> str:
    accept = request.headers.get("Accept")
    if not accept:
        return IMAGE_TYPES[0]
    best = request.accept_mimetypes.best_match(IMAGE_TYPES)
    if best is None:
        raise DicomWebError(406, "not_acceptable", f"rendered media types offered: {', '.join(IMAGE_TYPES)}")
    return best


def _render_params(default_viewport: tuple[int, int] | None) -> tuple[tuple[int, int] | None, int]:
    viewport, quality = default_viewport, 90
    for name, value in request.args.items(multi=True):
        if name == "viewport":
            match = re.fullmatch(r"(\d{1,5}),(\d{1,5})", value)
            if not match or not all(0 < int(v) <= MAX_VIEWPORT for v in match.groups()):
                raise DicomWebError(400, "bad_request",
                                    f"viewport must be vw,vh (1..{MAX_VIEWPORT}); the source-region form is not supported")
            viewport = (int(match.group(1)), int(match.group(2)))
        elif name == "quality":
            if not value.isdigit() or not 1 <= int(value) <= 100:
                raise DicomWebError(400, "bad_request", "quality must be 1..100")
            quality = int(value)
        else:
            raise DicomWebError(400, "bad_request", f"rendered parameter {name!r} is not supported (viewport, quality)")
    return viewport, quality


def fitted_size(columns: int, rows: int, viewport: tuple[int, int] | None) -> tuple[int, int]:
    """``(width, height)`` of a *columns* x *rows* image scaled to fit *viewport*, aspect ratio kept."""
    if viewport is None:
        return columns, rows
    scale = min(viewport[0] / columns, viewport[1] / rows)
    return max(1, round(columns * scale)), max(1, round(rows * scale))


@lru_cache(maxsize=256)
def encode_image(file_name: str, frame: int, size: tuple[int, int], media_type: str, quality: int) -> bytes:
    """Frame *frame* of *file_name* rendered (:func:`sandbox.render.render_png`), resized, encoded."""
    image = Image.open(io.BytesIO(render_png(file_name, frame)))
    image.load()
    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if media_type == "image/png":
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _image_response(instance: InstanceRecord, frame: int, default_viewport: tuple[int, int] | None) -> Response:
    media_type = _media_type()
    viewport, quality = _render_params(default_viewport)
    header = read_header(instance.source_file)
    size = fitted_size(header.columns, header.rows, viewport)
    try:
        body = encode_image(instance.source_file, frame, size, media_type, quality)
    except FrameOutOfRange:
        raise DicomWebError(404, "not_found", f"frame {frame} not in 1..{instance.frames}") from None
    return Response(body, content_type=media_type, headers={"Cache-Control": "private, max-age=3600"})


def _frame_number(frames: str) -> int:
    if not frames.isdigit() or int(frames) < 1:
        raise DicomWebError(400, "bad_request", "one frame number (1-based) is supported in rendered/thumbnail requests")
    return int(frames)


def _representative(series_list: list[SeriesRecord]) -> InstanceRecord:
    series = min(series_list, key=lambda s: s.number)
    return min(series.instances, key=lambda i: i.number)


@bp.get("/studies/<study_uid>/series/<series_uid>/instances/<instance_uid>/rendered")
def instance_rendered(study_uid: str, series_uid: str, instance_uid: str):
    """Rendered instance (first frame)."""
    study = _study(study_uid, authorize("read"))
    instance = _instance(_series(study, series_uid), instance_uid)
    return _image_response(instance, 1, None)


@bp.get("/studies/<study_uid>/series/<series_uid>/instances/<instance_uid>/frames/<frames>/rendered")
def frame_rendered(study_uid: str, series_uid: str, instance_uid: str, frames: str):
    """Rendered frame (one 1-based frame number)."""
    study = _study(study_uid, authorize("read"))
    instance = _instance(_series(study, series_uid), instance_uid)
    return _image_response(instance, _frame_number(frames), None)


@bp.get("/studies/<study_uid>/thumbnail")
def study_thumbnail(study_uid: str):
    """Thumbnail of a study (its representative instance)."""
    study = _study(study_uid, authorize("read"))
    return _image_response(_representative(study.series), 1, THUMBNAIL_SIZE)


@bp.get("/studies/<study_uid>/series/<series_uid>/thumbnail")
def series_thumbnail(study_uid: str, series_uid: str):
    """Thumbnail of a series."""
    study = _study(study_uid, authorize("read"))
    return _image_response(_representative([_series(study, series_uid)]), 1, THUMBNAIL_SIZE)


@bp.get("/studies/<study_uid>/series/<series_uid>/instances/<instance_uid>/thumbnail")
def instance_thumbnail(study_uid: str, series_uid: str, instance_uid: str):
    """Thumbnail of an instance (first frame)."""
    study = _study(study_uid, authorize("read"))
    instance = _instance(_series(study, series_uid), instance_uid)
    return _image_response(instance, 1, THUMBNAIL_SIZE)


@bp.get("/studies/<study_uid>/series/<series_uid>/instances/<instance_uid>/frames/<frames>/thumbnail")
def frame_thumbnail(study_uid: str, series_uid: str, instance_uid: str, frames: str):
    """Thumbnail of one frame."""
    study = _study(study_uid, authorize("read"))
    instance = _instance(_series(study, series_uid), instance_uid)
    return _image_response(instance, _frame_number(frames), THUMBNAIL_SIZE)


@bp.route("/", defaults={"rest": ""}, methods=["GET", "POST", "PUT", "DELETE"])
@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "DELETE"])
def unsupported(rest: str):
    """Other DICOMweb resources (retrieve DICOM, bulk data, STOW-RS, …) are not offered."""
    authorize("read")
    if request.method != "GET":
        raise DicomWebError(405, "method_not_allowed", f"{request.method} is not supported (read-only sandbox PACS)")
    raise DicomWebError(404, "not_supported", f"/dicomweb/{rest} is not offered by this sandbox "
                        "(QIDO-RS, WADO-RS metadata, rendered and thumbnail only)")
