"""Patient and imaging-study records and their FHIR R4 representations.

A :class:`StudyRecord` holds both the FHIR ``ImagingStudy`` resource served by
the FHIR API and the series/instance tree (with each instance's pixel source
file) the IID display renders from.

FHIR R4 ImagingStudy conventions used (FHIR R4 §ImagingStudy, §Identifier):
Study Instance UID identifier ``{"system": "urn:dicom:uid", "value": "urn:oid:<uid>"}``,
accession identifier typed ``ACSN`` (v2-0203), series modality as a Coding in
``http://dicom.nema.org/resources/ontology/DCM``, instance ``sopClass`` as a
Coding ``{"system": "urn:ietf:rfc:3986", "code": "urn:oid:<sop class uid>"}``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DCM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
DICOM_UID_SYSTEM = "urn:dicom:uid"
IID_ENDPOINT_ID = "sandbox-iid"
DICOMWEB_ENDPOINT_ID = "sandbox-dicomweb"
#: statuses of studies the sandbox PACS (DICOMweb) does not hold
NOT_IN_PACS = ("cancelled", "entered-in-error")

#: Root OID of this sandbox (a UUID-derived OID, ITU-T X.667 / DICOM PS3.5 B.2).
SANDBOX_OID = "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:smart-imaging-sandbox").int)
#: Assigning authority of MRNs and of IID ``patientID`` (HL7 v2 CX.4 universal id, ISO).
PATIENT_ID_ISSUER_OID = SANDBOX_OID + ".1"
MRN_SYSTEM = "urn:oid:" + PATIENT_ID_ISSUER_OID
ACCESSION_SYSTEM = "urn:oid:" + SANDBOX_OID + ".2"


def uid_from_name(name: str) -> str:
    """Deterministic DICOM UID ``2.25.<uuid5 int>`` for *name* (<= 64 chars, PS3.5 §B.2)."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:smart-imaging-sandbox:" + name).int)


@dataclass
class InstanceRecord:
    """One SOP instance; ``source_file`` is the bundled DICOM file giving its pixels."""

    sop_instance_uid: str
    sop_class_uid: str
    number: int
    source_file: str
    frames: int = 1
    title: str | None = None


@dataclass
class SeriesRecord:
    """One series (``series_instance_uid``, DICOM ``modality`` code, description)."""

    series_instance_uid: str
    modality: str
    number: int
    description: str
    body_part: str | None = None
    instances: list[InstanceRecord] = field(default_factory=list)


@dataclass
class StudyRecord:
    """One imaging study.

    ``study_instance_uid`` is None for studies without a UID. ``resource`` is the
    FHIR R4 ImagingStudy (a JSON-ready dict; treat as read-only).
    """

    id: str
    patient_id: str
    status: str
    study_instance_uid: str | None
    accession_number: str | None
    started: datetime | None
    description: str | None
    series: list[SeriesRecord]
    resource: dict[str, Any]

    @property
    def modalities(self) -> list[str]:
        """Distinct series modality codes, in series order."""
        return list(dict.fromkeys(s.modality for s in self.series))


@dataclass
class PatientRecord:
    """A patient: FHIR id, demographics resource, and its studies (any order)."""

    id: str
    resource: dict[str, Any]
    mrn: str
    studies: list[StudyRecord] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        """``Given Family`` from the official name."""
        name = self.resource["name"][0]
        return " ".join([*name.get("given", []), name.get("family", "")]).strip()


def patient_resource(patient_id: str, family: str, given: list[str], gender: str, birth_date: str, mrn: str) -> dict:
    """FHIR R4 Patient with an ``MR``-typed identifier in :data:`MRN_SYSTEM`."""
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [
            {
                "use": "usual",
                "type": {"coding": [{"system": V2_0203, "code": "MR", "display": "Medical record number"}]},
                "system": MRN_SYSTEM,
                "value": mrn,
            }
        ],
        "active": True,
        "name": [{"use": "official", "family": family, "given": given}],
        "gender": gender,
        "birthDate": birth_date,
    }


def uid_identifier(study_instance_uid: str, with_prefix: bool = True) -> dict:
    """Study Instance UID identifier (R4 convention: ``urn:oid:`` prefixed value)."""
    value = ("urn:oid:" + study_instance_uid) if with_prefix else study_instance_uid
    return {"system": DICOM_UID_SYSTEM, "value": value}


def accession_identifier(accession_number: str) -> dict:
    """Accession number identifier typed ``ACSN`` (HL7 v2 table 0203)."""
    return {
        "type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
        "system": ACCESSION_SYSTEM,
        "value": accession_number,
    }


def series_element(series: SeriesRecord) -> dict:
    """``ImagingStudy.series`` element for *series*."""
    element: dict[str, Any] = {
        "uid": series.series_instance_uid,
        "number": series.number,
        "modality": {"system": DCM_SYSTEM, "code": series.modality},
    }
    if series.description:
        element["description"] = series.description
    element["numberOfInstances"] = len(series.instances)
    if series.body_part:
        element["bodySite"] = {"display": series.body_part}
    element["instance"] = []
    for instance in series.instances:
        item: dict[str, Any] = {
            "uid": instance.sop_instance_uid,
            "sopClass": {"system": "urn:ietf:rfc:3986", "code": "urn:oid:" + instance.sop_class_uid},
            "number": instance.number,
        }
        if instance.title:
            item["title"] = instance.title
        element["instance"].append(item)
    return element


def study_resource(
    study_id: str,
    patient_id: str,
    status: str,
    identifiers: list[dict],
    started: datetime | None,
    description: str | None,
    series: list[SeriesRecord],
) -> dict:
    """FHIR R4 ImagingStudy for the given parts (numberOfSeries/Instances computed)."""
    resource: dict[str, Any] = {"resourceType": "ImagingStudy", "id": study_id}
    if identifiers:
        resource["identifier"] = identifiers
    resource["status"] = status
    modalities = list(dict.fromkeys(s.modality for s in series))
    if modalities:
        resource["modality"] = [{"system": DCM_SYSTEM, "code": m} for m in modalities]
    resource["subject"] = {"reference": f"Patient/{patient_id}"}
    if started is not None:
        resource["started"] = started.isoformat()
    if series:
        resource["endpoint"] = [{"reference": f"Endpoint/{IID_ENDPOINT_ID}"}]
        resource["numberOfSeries"] = len(series)
        resource["numberOfInstances"] = sum(len(s.instances) for s in series)
    if description:
        resource["description"] = description
    if series:
        resource["series"] = [series_element(s) for s in series]
    return resource


def make_study(
    study_id: str,
    patient_id: str,
    *,
    status: str,
    study_instance_uid: str | None,
    accession_number: str | None,
    started: datetime | None,
    description: str | None,
    series: list[SeriesRecord],
    identifiers: list[dict] | None = None,
) -> StudyRecord:
    """Build a :class:`StudyRecord`; identifiers default to ``[UID, ACSN]`` (whichever exist).

    ``endpoint``: ``Endpoint/sandbox-iid`` for a study with series, then
    ``Endpoint/sandbox-dicomweb`` when it also has a Study Instance UID and a
    status other than :data:`NOT_IN_PACS` (the studies ``/dicomweb`` serves).
    """
    if identifiers is None:
        identifiers = []
        if study_instance_uid:
            identifiers.append(uid_identifier(study_instance_uid))
        if accession_number:
            identifiers.append(accession_identifier(accession_number))
    resource = study_resource(study_id, patient_id, status, identifiers, started, description, series)
    if study_instance_uid and series and status not in NOT_IN_PACS:  # the sandbox PACS's DICOMweb serves it
        resource["endpoint"].append({"reference": f"Endpoint/{DICOMWEB_ENDPOINT_ID}"})
    return StudyRecord(
        id=study_id,
        patient_id=patient_id,
        status=status,
        study_instance_uid=study_instance_uid,
        accession_number=accession_number,
        started=started,
        description=description,
        series=series,
        resource=resource,
    )
