"""Studies built from real DICOM files (pt-1001, pt-1002) and the HL7 R4 examples (pt-1006).

Study/Series/SOP Instance UIDs, modality, dates, descriptions and accession
numbers come from the DICOM files (pydicom test data); only what a file lacks
is synthesised (tables below). Files sharing a Study Instance UID form one
study (``JPGExtended.dcm`` + ``JPEG2000.dcm``).

Honest demo data: each synthesised description and body part says what the pixels show,
checked by eye and recorded here (``tests/sandbox/test_demo_honesty.py`` checks modality,
frames and the words below against the served DICOM):

* ``CT_small.dcm``: axial CT through a thoracic vertebra with lung and aorta (chest);
* ``MR_small.dcm``: a 64 x 64 derived MR crop whose anatomy cannot be told, so it is named as such;
* ``examples_rgb_color.dcm``: small-parts ultrasound of a lymph node with power Doppler (its burnt-in label);
* ``JPGExtended.dcm`` + ``JPEG2000.dcm``: NM whole-body bone scan;
* ``examples_overlay.dcm``: MR of the upper abdomen (liver, kidneys) with a marked lesion;
* ``examples_ybr_color.dcm``: echocardiogram cine, 30 frames (``PLA``: parasternal long axis);
* ``examples_palette.dcm``: obstetric ultrasound (``ImageType`` OBSTETRICAL, "Philips OB" burnt in);
* ``rtdose.dcm``: a radiotherapy dose grid, 15 planes;
* ``693_J2KI.dcm``: axial non-contrast CT of the head (CQ500, "5/5mm Plain").

A study of several frames says how many in its description (``… (30 frames)``), since the
FHIR ImagingStudy counts instances, not frames. The priors reuse the pixels of the later study
under new UIDs, and their series description says so.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from .dicom_source import read_header
from .records import (
    DICOM_UID_SYSTEM,
    V2_0203,
    InstanceRecord,
    SeriesRecord,
    StudyRecord,
    make_study,
    uid_from_name,
)

DATA_DIR = Path(__file__).resolve().parent / "data"
SITE_TIMEZONE = ZoneInfo("America/Chicago")

#: (study id, patient id, files, synthesised study description, synthesised accession, synthesised start)
DICOM_STUDIES: tuple[tuple[str, str, tuple[str, ...], str, str, str | None], ...] = (
    ("is-1001-ct", "pt-1001", ("CT_small.dcm",), "CT Chest without contrast", "A1001001", None),
    ("is-1001-mr", "pt-1001", ("MR_small.dcm",), "MR single slice, anatomy not identified (demo sample)",
     "A1001002", None),
    ("is-1001-us-rgb", "pt-1001", ("examples_rgb_color.dcm",), "US Lymph node with power Doppler", "A1001003",
     None),
    ("is-1001-nm-bone", "pt-1001", ("JPGExtended.dcm", "JPEG2000.dcm"), "NM Whole body bone scan", "A1001004", None),
    ("is-1001-mr-abdomen", "pt-1001", ("examples_overlay.dcm",), "MR Abdomen liver protocol", "A1001005", None),
    ("is-1001-us-cine", "pt-1001", ("examples_ybr_color.dcm",), "US Echocardiogram cine, parasternal long axis",
     "A1001006", None),
    ("is-1001-us-doppler", "pt-1001", ("examples_palette.dcm",), "US Obstetric", "A1001007", None),
    ("is-1001-rtdose", "pt-1001", ("rtdose.dcm",), "Radiotherapy dose distribution", "A1001008", None),
    ("is-1002-ct", "pt-1002", ("693_J2KI.dcm",), "CT Head without contrast", "A1002001", "2023-03-14T09:12:00"),
)

#: pt-1001 priors of the same modality and body region (pixels from the same files; UIDs synthesised,
#: as a PACS would hold an earlier exam): (study id, file, description, accession, start, body part)
PRIOR_STUDIES: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("is-1001-ct-prior", "CT_small.dcm", "CT Chest without contrast", "A1001009", "2002-06-03T10:20:00", "CHEST"),
    ("is-1001-mr-prior", "MR_small.dcm", "MR single slice, anatomy not identified (demo sample)", "A1001010",
     "2001-05-14T08:10:00", None),
)

HL7_EXAMPLES = (
    ("fhir-r4-ImagingStudy-example.json", "pt-1006"),
    ("fhir-r4-ImagingStudy-example-xr.json", "pt-1006"),
)
HL7_ENDPOINTS = ("fhir-r4-Endpoint-example-iid.json", "fhir-r4-Endpoint-example-wadors.json")
#: pixel source per series modality for the HL7 example instances (they have no pixels of their own)
HL7_PIXEL_SOURCES = {"CT": "CT_small.dcm", "DX": "JPGExtended.dcm"}


def dicom_datetime(study_date: str, study_time: str, tz_offset: str) -> datetime | None:
    """Combine DICOM DA/TM (+ optional TimezoneOffsetFromUTC ``+hhmm``) into an aware datetime.

    Without an offset the site time zone (America/Chicago) is assumed. Returns
    None when the date is empty.
    """
    if not study_date:
        return None
    digits = (study_time.split(".")[0] + "000000")[:6]
    naive = datetime.strptime(study_date + digits, "%Y%m%d%H%M%S")
    if tz_offset and len(tz_offset) == 5:
        sign = -1 if tz_offset[0] == "-" else 1
        offset = timedelta(hours=int(tz_offset[1:3]), minutes=int(tz_offset[3:5]))
        return naive.replace(tzinfo=timezone(sign * offset))
    return naive.replace(tzinfo=SITE_TIMEZONE)


def _meaningful(text: str | None) -> bool:
    """A file's description is kept when it reads as words (CT_small.dcm's ``"e+1"`` does not, nor a coded
    ``abdomen^liver``)."""
    return bool(text) and sum(ch.isalpha() for ch in text) >= 3 and "^" not in text


def with_frame_count(description: str, frames: int) -> str:
    """``description (N frames)`` for a study of more than one frame: ImagingStudy counts instances only."""
    return f"{description} ({frames} frames)" if frames > 1 else description


def _dicom_study(study_id, patient_id, files, description, accession, started_text) -> StudyRecord:
    headers = [read_header(name) for name in files]
    first = headers[0]
    if any(h.study_instance_uid != first.study_instance_uid for h in headers):
        raise ValueError(f"{study_id}: files do not share a Study Instance UID")
    series_by_uid: dict[str, SeriesRecord] = {}
    for header in headers:
        series = series_by_uid.get(header.series_instance_uid)
        if series is None:
            series = SeriesRecord(
                series_instance_uid=header.series_instance_uid,
                modality=header.modality,
                number=header.series_number or len(series_by_uid) + 1,
                description=header.series_description or description,
                body_part=header.body_part_examined or None,
            )
            series_by_uid[header.series_instance_uid] = series
        series.instances.append(
            InstanceRecord(
                sop_instance_uid=header.sop_instance_uid,
                sop_class_uid=header.sop_class_uid,
                number=header.instance_number or len(series.instances) + 1,
                source_file=header.file_name,
                frames=header.number_of_frames,
            )
        )
    started = dicom_datetime(first.study_date, first.study_time, first.timezone_offset)
    if started is None and started_text:
        started = datetime.fromisoformat(started_text).replace(tzinfo=SITE_TIMEZONE)
    frames = max(i.frames for s in series_by_uid.values() for i in s.instances)
    return make_study(
        study_id,
        patient_id,
        status="available",
        study_instance_uid=first.study_instance_uid,
        accession_number=first.accession_number or accession,
        started=started,
        description=with_frame_count(first.study_description if _meaningful(first.study_description)
                                     else description, frames),
        series=list(series_by_uid.values()),
    )


def _prior_study(study_id, file_name, description, accession, started_text, body_part) -> StudyRecord:
    """An earlier pt-1001 study with the pixels of ``file_name`` under synthesised UIDs."""
    header = read_header(file_name)
    series = SeriesRecord(series_instance_uid=uid_from_name(f"{study_id}/1"), modality=header.modality, number=1,
                          description=f"{description} (demo prior: the later study's pixels)", body_part=body_part,
                          instances=[InstanceRecord(sop_instance_uid=uid_from_name(f"{study_id}/1/1"),
                                                    sop_class_uid=header.sop_class_uid, number=1,
                                                    source_file=file_name, frames=header.number_of_frames)])
    return make_study(study_id, "pt-1001", status="available", study_instance_uid=uid_from_name(study_id),
                      accession_number=accession, description=description, series=[series],
                      started=datetime.fromisoformat(started_text).replace(tzinfo=SITE_TIMEZONE))


#: body part per demo study where the file has none (so priors can match by body site)
BODY_PARTS = {"is-1001-ct": "CHEST", "is-1001-us-cine": "HEART", "is-1001-us-doppler": "PELVIS",
              "is-1002-ct": "HEAD"}


def dicom_studies() -> list[StudyRecord]:
    """Studies of pt-1001 (with its priors) and pt-1002, one per distinct Study Instance UID (reads headers only)."""
    studies = [_dicom_study(*row) for row in DICOM_STUDIES]
    for study in studies:
        part = BODY_PARTS.get(study.id)
        if part:
            for series in study.series:
                series.body_part = series.body_part or part
            study.resource = make_study(study.id, study.patient_id, status=study.status,
                                        study_instance_uid=study.study_instance_uid,
                                        accession_number=study.accession_number, started=study.started,
                                        description=study.description, series=study.series).resource
    return studies + [_prior_study(*row) for row in PRIOR_STUDIES]


def _load_json(name: str) -> dict:
    with open(DATA_DIR / name, encoding="utf-8") as handle:
        return json.load(handle)


def hl7_example_studies() -> list[StudyRecord]:
    """The HL7 R4 ImagingStudy examples, subject rewritten to their sandbox patient."""
    records = []
    for file_name, patient_id in HL7_EXAMPLES:
        resource = _load_json(file_name)
        resource["subject"] = {"reference": f"Patient/{patient_id}"}
        uid = accession = None
        for identifier in resource.get("identifier", []):
            codes = {c.get("code") for c in identifier.get("type", {}).get("coding", [])}
            if identifier.get("system") == DICOM_UID_SYSTEM:
                uid = identifier["value"].removeprefix("urn:oid:")
            elif "ACSN" in codes and any(c.get("system") == V2_0203 for c in identifier["type"]["coding"]):
                accession = identifier["value"]
        series = []
        for element in resource.get("series", []):
            modality = element["modality"]["code"]
            source = HL7_PIXEL_SOURCES.get(modality, "CT_small.dcm")
            series.append(
                SeriesRecord(
                    series_instance_uid=element["uid"],
                    modality=modality,
                    number=element.get("number", 1),
                    description=element.get("description", ""),
                    instances=[
                        InstanceRecord(
                            sop_instance_uid=inst["uid"],
                            sop_class_uid=inst["sopClass"]["code"].removeprefix("urn:oid:"),
                            number=inst.get("number", 1),
                            source_file=source,
                            frames=read_header(source).number_of_frames,
                            title=inst.get("title"),
                        )
                        for inst in element.get("instance", [])
                    ],
                )
            )
        started = datetime.fromisoformat(resource["started"]) if resource.get("started") else None
        description = resource.get("description") or (series[0].description if series else None)
        records.append(
            StudyRecord(
                id=resource["id"],
                patient_id=patient_id,
                status=resource["status"],
                study_instance_uid=uid,
                accession_number=accession,
                started=started,
                description=description,
                series=series,
                resource=resource,
            )
        )
    return records


def hl7_example_endpoints() -> list[dict]:
    """The HL7 R4 Endpoint examples (``example-iid``, ``example-wadors``), verbatim."""
    return [_load_json(name) for name in HL7_ENDPOINTS]
