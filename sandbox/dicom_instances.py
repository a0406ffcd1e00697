"""DICOM datasets of the sandbox's instances as its PACS holds them (DICOMweb metadata, PACS uploads).

Each :class:`~sandbox.records.InstanceRecord` takes its pixels and most of its
header from a bundled pydicom file (:mod:`sandbox.dicom_source`). The
attributes that identify the patient, study, series and instance are replaced
by the sandbox's own records, so DICOM and FHIR tell the same story:

=============================  ==================================================
PatientName (0010,0010)        FHIR ``Patient.name`` official: ``Family^Given^Middle``
PatientID (0010,0020)          the patient's MRN (``Patient.identifier`` typed ``MR``), e.g. ``M0041001``
IssuerOfPatientID (0010,0021)  the MRN's assigning authority OID (no ``urn:oid:``):
                               :data:`~sandbox.records.PATIENT_ID_ISSUER_OID`
Issuer…QualifiersSequence      (0010,0024) UniversalEntityID = that OID, UniversalEntityIDType ``ISO``
PatientBirthDate / Sex         ``Patient.birthDate`` (YYYYMMDD) / ``gender`` (F, M, O)
StudyInstanceUID, dates, …     the study record (``started`` in its own offset,
                               TimezoneOffsetFromUTC set), accession, description
Series / SOP attributes        the series and instance records (UIDs, numbers,
                               modality, description, SOP Class UID)
=============================  ==================================================

For pt-1001 and pt-1002 the UIDs are the files' own; generated studies get
their ``2.25.`` UIDs. Headers are cached per file and deep-copied per use.
"""

from __future__ import annotations

import copy
import io
from functools import lru_cache

import pydicom
from pydicom.dataset import Dataset as DicomDataset

from .dicom_source import load_dataset, testdata_path
from .records import PATIENT_ID_ISSUER_OID, InstanceRecord, PatientRecord, SeriesRecord, StudyRecord

DICOM_SEX = {"female": "F", "male": "M", "other": "O", "unknown": "O"}


@lru_cache(maxsize=None)
def _header(file_name: str) -> DicomDataset:
    return pydicom.dcmread(testdata_path(file_name), stop_before_pixels=True)


def patient_name(patient: PatientRecord) -> str:
    """DICOM PN (``Family^Given^Middle...``) from the official FHIR name."""
    name = patient.resource["name"][0]
    given = name.get("given", [])
    parts = [name.get("family", ""), given[0] if given else "", " ".join(given[1:])]
    return "^".join(parts).rstrip("^")


def study_date_time(study: StudyRecord) -> tuple[str, str, str]:
    """``(StudyDate, StudyTime, TimezoneOffsetFromUTC)`` from ``started`` ('' when undated)."""
    if study.started is None:
        return "", "", ""
    started = study.started
    return started.strftime("%Y%m%d"), started.strftime("%H%M%S"), started.strftime("%z")


def apply_identity(ds: DicomDataset, patient: PatientRecord, study: StudyRecord,
                   series: SeriesRecord, instance: InstanceRecord) -> DicomDataset:
    """Overwrite patient, study, series and instance identification of *ds* in place (returns it)."""
    ds.PatientName = patient_name(patient)
    ds.PatientID = patient.mrn
    ds.IssuerOfPatientID = PATIENT_ID_ISSUER_OID
    qualifiers = DicomDataset()
    qualifiers.UniversalEntityID = PATIENT_ID_ISSUER_OID
    qualifiers.UniversalEntityIDType = "ISO"
    ds.IssuerOfPatientIDQualifiersSequence = [qualifiers]
    ds.PatientBirthDate = patient.resource.get("birthDate", "").replace("-", "")
    ds.PatientSex = DICOM_SEX.get(patient.resource.get("gender", ""), "")
    date, time, offset = study_date_time(study)
    ds.StudyInstanceUID = study.study_instance_uid
    ds.StudyDate, ds.StudyTime = date, time
    if offset:
        ds.TimezoneOffsetFromUTC = offset
    ds.AccessionNumber = study.accession_number or ""
    ds.StudyDescription = study.description or ""
    ds.SeriesInstanceUID = series.series_instance_uid
    ds.SeriesNumber = series.number
    ds.Modality = series.modality
    ds.SeriesDescription = series.description or ""
    if series.body_part:
        ds.BodyPartExamined = series.body_part
    ds.SOPInstanceUID = instance.sop_instance_uid
    ds.SOPClassUID = instance.sop_class_uid
    ds.InstanceNumber = instance.number
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.MediaStorageSOPInstanceUID = instance.sop_instance_uid
        ds.file_meta.MediaStorageSOPClassUID = instance.sop_class_uid
    return ds


def instance_header(patient: PatientRecord, study: StudyRecord, series: SeriesRecord,
                    instance: InstanceRecord) -> DicomDataset:
    """The instance's header (no pixel data) with the sandbox's identity applied (a fresh copy)."""
    return apply_identity(copy.deepcopy(_header(instance.source_file)), patient, study, series, instance)


def instance_file_bytes(patient: PatientRecord, study: StudyRecord, series: SeriesRecord,
                        instance: InstanceRecord) -> bytes:
    """A DICOM PS3.10 file (with pixel data, the source's transfer syntax) of the instance, for a PACS upload."""
    ds = apply_identity(copy.deepcopy(load_dataset(instance.source_file)), patient, study, series, instance)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
