"""The DICOM files bundled with pydicom that give the sandbox real pixels.

Headers are read with ``stop_before_pixels=True`` (cheap) and cached; the full
dataset (with pixel data) is only loaded by :mod:`sandbox.render`, on demand.
Only files present in the pydicom wheel are used (``download=False``), and each
was checked to decode with the installed pylibjpeg plugins (``JPEG-lossy.dcm``
does not decode and is deliberately absent).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import pydicom
from pydicom.data import get_testdata_file

#: Files making up the real studies of pt-1001 and pt-1002 (DICOM PS3.10 files).
DEMO_FILES: tuple[str, ...] = (
    "CT_small.dcm",
    "MR_small.dcm",
    "examples_rgb_color.dcm",
    "JPGExtended.dcm",
    "JPEG2000.dcm",
    "examples_overlay.dcm",
    "examples_ybr_color.dcm",
    "examples_palette.dcm",
    "rtdose.dcm",
    "693_J2KI.dcm",
)

#: Pixel source per modality for generated studies (first file is the default).
PIXEL_SOURCES_BY_MODALITY: dict[str, tuple[str, ...]] = {
    "CT": ("CT_small.dcm", "693_J2KI.dcm"),
    "MR": ("MR_small.dcm", "examples_overlay.dcm"),
    "US": ("examples_rgb_color.dcm", "examples_palette.dcm", "examples_ybr_color.dcm"),
    "NM": ("JPGExtended.dcm", "JPEG2000.dcm"),
    "CR": ("JPGExtended.dcm",),
    "DX": ("JPGExtended.dcm",),
    "MG": ("JPGExtended.dcm",),
}
DEFAULT_PIXEL_SOURCE = "CT_small.dcm"

_load_lock = threading.Lock()


@dataclass(frozen=True)
class DicomHeader:
    """Identifying attributes of one bundled DICOM instance (DICOM PS3.3 tag names)."""

    file_name: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    study_date: str
    study_time: str
    timezone_offset: str
    study_description: str
    series_description: str
    series_number: int | None
    instance_number: int | None
    accession_number: str
    body_part_examined: str
    number_of_frames: int
    rows: int
    columns: int


def testdata_path(file_name: str) -> str:
    """Absolute path of a pydicom test file; raises ``FileNotFoundError`` if not bundled."""
    path = get_testdata_file(file_name, download=False)
    if not path:
        raise FileNotFoundError(f"{file_name} is not bundled with this pydicom")
    return str(path)


def _int_or_none(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


@lru_cache(maxsize=None)
def read_header(file_name: str) -> DicomHeader:
    """Read and cache the header of *file_name* (no pixel data)."""
    ds = pydicom.dcmread(testdata_path(file_name), stop_before_pixels=True)
    return DicomHeader(
        file_name=file_name,
        study_instance_uid=str(ds.StudyInstanceUID),
        series_instance_uid=str(ds.SeriesInstanceUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        sop_class_uid=str(ds.SOPClassUID),
        modality=str(ds.get("Modality", "") or "OT"),
        study_date=str(ds.get("StudyDate", "") or ""),
        study_time=str(ds.get("StudyTime", "") or ""),
        timezone_offset=str(ds.get("TimezoneOffsetFromUTC", "") or ""),
        study_description=str(ds.get("StudyDescription", "") or "").strip(),
        series_description=str(ds.get("SeriesDescription", "") or "").strip(),
        series_number=_int_or_none(ds.get("SeriesNumber")),
        instance_number=_int_or_none(ds.get("InstanceNumber")),
        accession_number=str(ds.get("AccessionNumber", "") or "").strip(),
        body_part_examined=str(ds.get("BodyPartExamined", "") or "").strip(),
        number_of_frames=_int_or_none(ds.get("NumberOfFrames")) or 1,
        rows=int(ds.Rows),
        columns=int(ds.Columns),
    )


@lru_cache(maxsize=16)
def _load_full(file_name: str) -> pydicom.Dataset:
    return pydicom.dcmread(testdata_path(file_name))


def load_dataset(file_name: str) -> pydicom.Dataset:
    """Full dataset including pixel data (cached, thread-safe load).

    Callers must treat the returned dataset as read-only.
    """
    with _load_lock:
        return _load_full(file_name)


def pixel_source_for(modality: str, choice: int) -> str:
    """Pick a bundled file to serve pixels for a generated *modality* image.

    *choice* is any integer (e.g. from a seeded RNG); it selects among the files
    listed for the modality in :data:`PIXEL_SOURCES_BY_MODALITY`.
    """
    files = PIXEL_SOURCES_BY_MODALITY.get(modality, (DEFAULT_PIXEL_SOURCE,))
    return files[choice % len(files)]
