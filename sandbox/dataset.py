"""The sandbox's patients and imaging studies, indexed for the FHIR API and the IID display.

Fixed patients (ids are part of the contract):

========  =====================================================================
pt-1001   main demo patient, 8 studies with real pixels from pydicom's files
pt-1002   exactly one study (real CT, JPEG 2000)
pt-1003   250 generated studies over 15 years (paging)
pt-1004   no studies
pt-1005   edge cases (statuses, missing UIDs, identifier order, 7 modalities)
pt-1006   the HL7 R4 ImagingStudy examples ``example`` and ``example-xr``
========  =====================================================================

Plus ``EXTRA_HISTORIES`` patients (generated on first use). Building is lazy:
nothing is read until the first request needs data, and the fixed part is
cached per process (the app's tests create many sandbox instances).
"""

from __future__ import annotations

import random
import threading
from functools import lru_cache
from typing import Any, Mapping

from .demo_studies import dicom_studies, hl7_example_endpoints, hl7_example_studies
from .history import edge_case_history, generate_history
from .records import IID_ENDPOINT_ID, InstanceRecord, PatientRecord, StudyRecord, patient_resource

#: id -> (family, given, gender, birthDate, MRN)
FIXED_PATIENTS: dict[str, tuple[str, list[str], str, str, str]] = {
    "pt-1001": ("Whitfield", ["Margaret", "Ann"], "female", "1958-03-14", "M0041001"),
    "pt-1002": ("Okafor", ["Daniel"], "male", "1979-11-02", "M0041002"),
    "pt-1003": ("Delgado", ["Rosa", "Elena"], "female", "1949-07-21", "M0041003"),
    "pt-1004": ("Brennan", ["Thomas"], "male", "1990-05-30", "M0041004"),
    "pt-1005": ("Tanaka", ["Aiko"], "female", "1966-09-09", "M0041005"),
    "pt-1006": ("Chalmers", ["Peter", "James"], "male", "1974-12-25", "M0041006"),
}

_FAMILIES = ("Hughes", "Novak", "Patel", "Lindqvist", "Moreau", "Abara", "Kowalski", "Reyes", "Nguyen", "Schmidt")
_GIVEN = (("Helen", "female"), ("Victor", "male"), ("Priya", "female"), ("Samuel", "male"), ("Ines", "female"),
          ("Marcus", "male"), ("Olga", "female"), ("Tomas", "male"))


@lru_cache(maxsize=1)
def _fixed_patients() -> dict[str, PatientRecord]:
    patients = {
        pid: PatientRecord(pid, patient_resource(pid, fam, given, sex, born, mrn), mrn)
        for pid, (fam, given, sex, born, mrn) in FIXED_PATIENTS.items()
    }
    studies = dicom_studies() + generate_history("pt-1003", 250) + edge_case_history("pt-1005") + hl7_example_studies()
    for study in studies:
        patients[study.patient_id].studies.append(study)
    return patients


@lru_cache(maxsize=32)
def _extra_patient(patient_id: str, count: int) -> PatientRecord:
    rng = random.Random(f"sandbox-patient:{patient_id}")
    given, sex = rng.choice(_GIVEN)
    birth = f"{rng.randint(1935, 1995)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    mrn = "M9" + "".join(ch for ch in patient_id if ch.isdigit()).rjust(6, "0")[-6:]
    record = PatientRecord(patient_id, patient_resource(patient_id, rng.choice(_FAMILIES), [given], sex, birth, mrn), mrn)
    record.studies = generate_history(patient_id, count)
    return record


class Dataset:
    """Index over all patients/studies (thread-safe lazy build).

    ``extra_histories``: mapping patient id -> generated study count.
    Raises ``ValueError`` if an extra id collides with a fixed patient.
    """

    def __init__(self, extra_histories: Mapping[str, int] | None = None):
        self._extra = dict(extra_histories or {})
        clash = set(self._extra) & set(FIXED_PATIENTS)
        if clash:
            raise ValueError(f"EXTRA_HISTORIES may not redefine fixed patients: {sorted(clash)}")
        self._lock = threading.Lock()
        self._built = False

    def _build(self) -> None:
        with self._lock:
            if self._built:
                return
            patients = dict(_fixed_patients())
            for patient_id, count in self._extra.items():
                patients[patient_id] = _extra_patient(patient_id, count)
            studies: dict[str, StudyRecord] = {}
            by_uid: dict[str, StudyRecord] = {}
            by_accession: dict[str, StudyRecord] = {}
            instances: dict[str, InstanceRecord] = {}
            for patient in patients.values():
                for study in patient.studies:
                    if study.id in studies:
                        raise ValueError(f"duplicate study id {study.id}")
                    studies[study.id] = study
                    if study.study_instance_uid:
                        by_uid[study.study_instance_uid] = study
                    if study.accession_number:
                        by_accession[study.accession_number] = study
                    for series in study.series:
                        for instance in series.instances:
                            instances[instance.sop_instance_uid] = instance
            self._patients, self._studies = patients, studies
            self._by_uid, self._by_accession, self._instances = by_uid, by_accession, instances
            self._built = True

    def patients(self) -> list[PatientRecord]:
        """All patients, ordered by id."""
        self._build()
        return [self._patients[k] for k in sorted(self._patients)]

    def patient(self, patient_id: str) -> PatientRecord | None:
        """Patient by FHIR id, or None."""
        self._build()
        return self._patients.get(patient_id)

    def patient_by_mrn(self, mrn: str) -> PatientRecord | None:
        """Patient by MRN value (identifier typed MR), or None."""
        self._build()
        return next((p for p in self._patients.values() if p.mrn == mrn), None)

    def study(self, study_id: str) -> StudyRecord | None:
        """Study by FHIR ImagingStudy id, or None."""
        self._build()
        return self._studies.get(study_id)

    def study_by_uid(self, study_instance_uid: str) -> StudyRecord | None:
        """Study by DICOM Study Instance UID (no ``urn:oid:`` prefix), or None."""
        self._build()
        return self._by_uid.get(study_instance_uid)

    def study_by_accession(self, accession_number: str) -> StudyRecord | None:
        """Study by accession number, or None."""
        self._build()
        return self._by_accession.get(accession_number)

    def instance(self, sop_instance_uid: str) -> InstanceRecord | None:
        """Instance by SOP Instance UID (gives its pixel source file), or None."""
        self._build()
        return self._instances.get(sop_instance_uid)

    def endpoint(self, endpoint_id: str, iid_base_url: str) -> dict[str, Any] | None:
        """Endpoint resource: the sandbox IID endpoint (address *iid_base_url*) or an HL7 example."""
        if endpoint_id == IID_ENDPOINT_ID:
            return {
                "resourceType": "Endpoint",
                "id": IID_ENDPOINT_ID,
                "status": "active",
                "connectionType": {
                    "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                    "code": "ihe-iid",
                },
                "name": "Sandbox PACS Invoke Image Display (IHE IID, RAD-106)",
                "payloadType": [{"text": "DICOM IID"}],
                "address": iid_base_url,
            }
        return next((e for e in _hl7_endpoints() if e["id"] == endpoint_id), None)


@lru_cache(maxsize=1)
def _hl7_endpoints() -> list[dict]:
    return hl7_example_endpoints()
