"""Deterministic, realistic imaging histories (seeded ``random.Random``).

Used for pt-1003 (250 studies over 15 years), pt-1005 (edge cases) and the
``EXTRA_HISTORIES`` benchmark patients. All UIDs are ``2.25.<uuid5 int>``
(DICOM PS3.5 §B.2), derived from the patient id and study index, so the same
inputs always give the same studies. Every generated instance takes its pixels
from a bundled DICOM file (:data:`sandbox.dicom_source.PIXEL_SOURCES_BY_MODALITY`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from .demo_studies import SITE_TIMEZONE
from .dicom_source import pixel_source_for, read_header
from .records import (
    InstanceRecord,
    SeriesRecord,
    StudyRecord,
    accession_identifier,
    make_study,
    uid_from_name,
    uid_identifier,
)

HISTORY_END = datetime(2025, 6, 30, 17, 0, tzinfo=SITE_TIMEZONE)
HISTORY_YEARS = 15


@dataclass(frozen=True)
class ModalityProfile:
    """How studies of one modality look: descriptions (with body part), series templates, SOP class."""

    weight: int
    descriptions: tuple[tuple[str, str], ...]
    series: tuple[tuple[str, int, int], ...]  # (series description, min instances, max instances)
    min_series: int
    sop_class_uid: str


PROFILES: dict[str, ModalityProfile] = {
    "CR": ModalityProfile(22, (("XR Chest PA and lateral", "CHEST"), ("XR Knee 3 views", "KNEE"),
                               ("XR Lumbar spine 2 views", "LSPINE")),
                          (("PA", 1, 1), ("Lateral", 1, 1), ("Oblique", 1, 1)), 1, "1.2.840.10008.5.1.4.1.1.1"),
    "DX": ModalityProfile(14, (("XR Hand 3 views", "HAND"), ("XR Wrist 3 views", "WRIST"),
                               ("XR Foot 3 views", "FOOT"), ("XR Shoulder 2 views", "SHOULDER")),
                          (("AP", 1, 1), ("Lateral", 1, 1), ("Oblique", 1, 1)), 2, "1.2.840.10008.5.1.4.1.1.1.1"),
    "CT": ModalityProfile(20, (("CT Head without contrast", "HEAD"), ("CT Chest with contrast", "CHEST"),
                               ("CT Abdomen and Pelvis with contrast", "ABDOMEN"), ("CTA Chest pulmonary embolism", "CHEST"),
                               ("CT Chest low-dose lung screening", "CHEST")),
                          (("Scout", 1, 2), ("Axial 5 mm", 3, 6), ("Axial 1.25 mm", 4, 8), ("Coronal MPR", 2, 4),
                           ("Sagittal MPR", 2, 4)), 2, "1.2.840.10008.5.1.4.1.1.2"),
    "MR": ModalityProfile(14, (("MR Brain with and without contrast", "BRAIN"), ("MR Lumbar spine without contrast", "LSPINE"),
                               ("MR Knee without contrast", "KNEE"), ("MR Abdomen liver protocol", "ABDOMEN")),
                          (("Localizer", 1, 3), ("T1 axial", 3, 6), ("T2 axial", 3, 6), ("FLAIR axial", 3, 6),
                           ("DWI", 2, 4), ("T1 post contrast", 3, 6)), 3, "1.2.840.10008.5.1.4.1.1.4"),
    "US": ModalityProfile(14, (("US Abdomen complete", "ABDOMEN"), ("US Thyroid", "NECK"),
                               ("US Carotid Doppler", "NECK"), ("US Pelvis transvaginal", "PELVIS"),
                               ("Echocardiogram transthoracic", "HEART")),
                          (("Grayscale", 2, 6), ("Color Doppler", 1, 4), ("Cine", 1, 2)), 1, "1.2.840.10008.5.1.4.1.1.6.1"),
    "NM": ModalityProfile(5, (("NM Whole body bone scan", "WHOLEBODY"), ("NM Myocardial perfusion rest/stress", "HEART")),
                          (("Anterior/Posterior", 1, 2), ("Spot views", 1, 3)), 1, "1.2.840.10008.5.1.4.1.1.20"),
    "MG": ModalityProfile(11, (("MG Screening mammogram bilateral", "BREAST"), ("MG Diagnostic mammogram", "BREAST")),
                          (("R CC", 1, 1), ("L CC", 1, 1), ("R MLO", 1, 1), ("L MLO", 1, 1)), 4, "1.2.840.10008.5.1.4.1.1.1.2"),
}


def _patient_key(patient_id: str) -> str:
    return patient_id.removeprefix("pt-")


def random_started(rng: random.Random) -> datetime:
    """A clinic-hours start time within the :data:`HISTORY_YEARS` before :data:`HISTORY_END` (site tz)."""
    span_days = HISTORY_YEARS * 365
    day = (HISTORY_END - timedelta(days=rng.randrange(span_days))).date()
    naive = datetime(day.year, day.month, day.day, rng.randint(7, 19), rng.randrange(60), rng.randrange(60))
    return naive.replace(tzinfo=SITE_TIMEZONE)


#: bundled files whose pixels do show this (modality, body part) (looked at; sandbox/demo_studies.py lists them)
REAL_PIXELS: dict[tuple[str, str], str] = {
    ("CT", "HEAD"): "693_J2KI.dcm", ("CT", "CHEST"): "CT_small.dcm", ("MR", "ABDOMEN"): "examples_overlay.dcm",
    ("US", "HEART"): "examples_ybr_color.dcm", ("NM", "WHOLEBODY"): "JPGExtended.dcm",
}
PLACEHOLDER_NOTE = " (synthetic history: placeholder image, not this anatomy)"


def pixels_for(modality: str, body_part: str, choice: int) -> tuple[str, bool]:
    """``(file, honest)``: a bundled file showing ``body_part`` in ``modality`` when there is one, else a
    placeholder of the modality (``honest`` false: the series description then says so)."""
    real = REAL_PIXELS.get((modality, body_part))
    return (real, True) if real else (pixel_source_for(modality, choice), False)


def generated_study(
    rng: random.Random,
    patient_id: str,
    index: int,
    modality: str,
    started: datetime,
    status: str = "available",
    description: str | None = None,
) -> StudyRecord:
    """One generated study (id ``is-<patient key>-<index:04d>``) with UIDs, accession, series, instances."""
    profile = PROFILES[modality]
    study_id = f"is-{_patient_key(patient_id)}-{index:04d}"
    chosen_description, body_part = rng.choice(profile.descriptions)
    description = description or chosen_description
    study_uid = uid_from_name(f"{patient_id}/{index}")
    accession = f"A{started:%y}{_patient_key(patient_id)}{index:04d}"
    series_count = rng.randint(profile.min_series, len(profile.series))
    source_choice = rng.randrange(1000)
    series = []
    for s_index, (series_description, low, high) in enumerate(profile.series[:series_count], start=1):
        source, honest = pixels_for(modality, body_part, source_choice + s_index)
        frames = read_header(source).number_of_frames
        record = SeriesRecord(
            series_instance_uid=uid_from_name(f"{patient_id}/{index}/{s_index}"),
            modality=modality,
            number=s_index,
            description=series_description if honest else series_description + PLACEHOLDER_NOTE,
            body_part=body_part,
        )
        for i_index in range(1, rng.randint(low, high) + 1):
            record.instances.append(
                InstanceRecord(
                    sop_instance_uid=uid_from_name(f"{patient_id}/{index}/{s_index}/{i_index}"),
                    sop_class_uid=profile.sop_class_uid,
                    number=i_index,
                    source_file=source,
                    frames=frames,
                )
            )
        series.append(record)
    return make_study(
        study_id,
        patient_id,
        status=status,
        study_instance_uid=study_uid,
        accession_number=accession,
        started=started,
        description=description,
        series=series,
    )


def generate_history(patient_id: str, count: int) -> list[StudyRecord]:
    """*count* studies for *patient_id* over 15 years, seeded by ``(patient_id, count)``.

    Studies are numbered 1..count in chronological order (ids ``is-<key>-0001`` ...).
    """
    rng = random.Random(f"sandbox-history:{patient_id}:{count}")
    modalities = list(PROFILES)
    weights = [PROFILES[m].weight for m in modalities]
    plan = sorted((random_started(rng), rng.choices(modalities, weights)[0]) for _ in range(count))
    return [generated_study(rng, patient_id, i, modality, started) for i, (started, modality) in enumerate(plan, start=1)]


def edge_case_history(patient_id: str = "pt-1005") -> list[StudyRecord]:
    """pt-1005: mixed modalities (CR, CT, MR, US, DX, NM, MG), a ``cancelled`` and an
    ``entered-in-error`` study, two studies without any UID, one study whose
    identifiers list the accession first (ACSN) then the UID (``urn:oid:``), and
    one whose UID value lacks the ``urn:oid:`` prefix.
    """
    rng = random.Random(f"sandbox-edge:{patient_id}")
    plan = [
        ("CR", "2012-02-03T08:15:00", "available"),
        ("CT", "2014-07-19T22:41:10", "available"),
        ("MR", "2016-10-02T13:05:44", "available"),
        ("US", "2018-01-24T10:30:00", "cancelled"),
        ("DX", "2019-05-11T16:20:31", "entered-in-error"),
        ("NM", "2020-09-08T09:00:00", "available"),
        ("MG", "2022-03-15T11:45:12", "available"),
        ("US", "2023-06-30T14:10:05", "available"),
    ]
    studies = [
        generated_study(rng, patient_id, i, modality, datetime.fromisoformat(text).replace(tzinfo=SITE_TIMEZONE), status)
        for i, (modality, text, status) in enumerate(plan, start=1)
    ]
    # MG study: several identifiers, accession first, then the UID, then a filler order number.
    mg = studies[6]
    mg.resource["identifier"] = [
        accession_identifier(mg.accession_number),
        uid_identifier(mg.study_instance_uid),
        {"use": "secondary", "system": "urn:oid:" + uid_from_name("order-numbers"), "value": "ORD-88213"},
    ]
    # Last US study: UID value without the urn:oid: prefix (seen in the field).
    bare = studies[7]
    bare.resource["identifier"][0] = uid_identifier(bare.study_instance_uid, with_prefix=False)
    key = _patient_key(patient_id)
    studies.append(
        make_study(f"is-{key}-0009", patient_id, status="registered", study_instance_uid=None,
                   accession_number=f"A24{key}0009",
                   started=datetime(2024, 11, 4, 9, 30, tzinfo=SITE_TIMEZONE),
                   description="CT Chest with contrast (scheduled)", series=[])
    )
    studies.append(
        make_study(f"is-{key}-0010", patient_id, status="available", study_instance_uid=None,
                   accession_number=None, identifiers=[],
                   started=datetime(2011, 4, 18, 15, 2, tzinfo=SITE_TIMEZONE),
                   description="Outside films, no DICOM UID recorded", series=[])
    )
    return studies
