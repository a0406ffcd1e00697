"""DICOM JSON (PS3.18 Annex F) attributes of QIDO-RS answers, read defensively.

Study attributes (PS3.18 §10.6.3.3.1, Table 10.6.3-3): StudyInstanceUID (0020,000D), StudyDate (0008,0020),
StudyTime (0008,0030), AccessionNumber (0008,0050), ModalitiesInStudy (0008,0061), StudyDescription
(0008,1030), PatientID (0010,0020), IssuerOfPatientID (0010,0021), NumberOfStudyRelatedSeries (0020,1206),
NumberOfStudyRelatedInstances (0020,1208). Series: SeriesInstanceUID (0020,000E), Modality (0008,0060),
SeriesNumber (0020,0011). Instances: SOPInstanceUID (0008,0018), InstanceNumber (0020,0013),
Rows (0028,0010), Columns (0028,0011).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..dicom import SeriesSketch, normalize_study_uid

STUDY_INCLUDE_FIELDS = ("00081030", "00100021", "00201206", "00201208", "00080061")
"""``includefield`` values the study list asks for (StudyDescription and IssuerOfPatientID are optional
return attributes; the counts and modalities are asked for in case a server leaves them out)."""


def values(item: dict, tag: str) -> list:
    """``item[tag]["Value"]`` as a list, ``[]`` when absent or wrong-typed."""
    element = item.get(tag)
    value = element.get("Value") if isinstance(element, dict) else None
    return value if isinstance(value, list) else []


def first_text(item: dict, tag: str, limit: int = 1000) -> str | None:
    """The first value as text (strings, numbers; a PN's ``Alphabetic``), cut to ``limit``, else ``None``."""
    for value in values(item, tag):
        if isinstance(value, dict):
            value = value.get("Alphabetic")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()[:limit]
    return None


def first_int(item: dict, tag: str) -> int | None:
    """The first value as a non-negative int (IS values may come as strings), else ``None``."""
    for value in values(item, tag):
        if isinstance(value, str) and value.strip().lstrip("+").isdigit():
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        break
    return None


@dataclass(frozen=True)
class QidoStudy:
    """One QIDO-RS study match. ``started``: FHIR-style ``YYYY-MM-DD[THH:MM:SS]`` from StudyDate/StudyTime (no
    offset), or ``None``; ``modalities``: ModalitiesInStudy in order."""

    study_instance_uid: str
    started: str | None
    accession_number: str | None
    modalities: tuple[str, ...]
    description: str | None
    patient_id: str | None
    issuer_of_patient_id: str | None
    number_of_series: int | None
    number_of_instances: int | None


def _started(date: str | None, time: str | None) -> str | None:
    if not date or len(date) != 8 or not date.isdigit():
        return None
    text = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    digits = (time or "").split(".")[0]
    if len(digits) >= 4 and digits.isdigit():
        text += f"T{digits[:2]}:{digits[2:4]}:{digits[4:6] or '00'}"
    return text


def read_study(item: Any) -> QidoStudy | None:
    """A :class:`QidoStudy` from one DICOM JSON object, or ``None`` without a valid StudyInstanceUID."""
    if not isinstance(item, dict):
        return None
    uid = normalize_study_uid(first_text(item, "0020000D", 64))
    if uid is None:
        return None
    modalities = tuple(dict.fromkeys(v[:16] for v in values(item, "00080061") if isinstance(v, str) and v))
    return QidoStudy(
        study_instance_uid=uid, started=_started(first_text(item, "00080020"), first_text(item, "00080030")),
        accession_number=first_text(item, "00080050"), modalities=modalities,
        description=first_text(item, "00081030"), patient_id=first_text(item, "00100020", 64),
        issuer_of_patient_id=first_text(item, "00100021", 64),
        number_of_series=first_int(item, "00201206"), number_of_instances=first_int(item, "00201208"))


def series_sketch(series: dict, instances: list[dict]) -> SeriesSketch | None:
    """A :class:`~app.dicom.SeriesSketch` of one QIDO series object and its instance objects."""
    uid = first_text(series, "0020000E", 64)
    if not uid:
        return None
    found = tuple((sop, first_int(i, "00200013")) for i in instances if (sop := first_text(i, "00080018", 64)))
    return SeriesSketch(uid, first_text(series, "00080060", 16), first_int(series, "00200011"), found)
