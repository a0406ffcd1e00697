"""The patient banner: name, birth date, sex and MRN, read with fhirclient's R4 ``Patient`` model.

SMART App Launch 2.2 §Launch context: when ``need_patient_banner`` is true
the app shows who the data belongs to. The model is parsed non-strictly so
that a DSTU2/STU3 Patient (same core fields) still yields a banner.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from fhirclient.models.patient import Patient

log = logging.getLogger(__name__)

MRN_TYPE_CODE = "MR"  # HL7 v2 table 0203 "Medical record number"


@dataclass(frozen=True)
class PatientBanner:
    """What the banner shows; any field may be ``None`` when the EHR did not record it."""

    patient_id: str
    name: str | None
    birth_date: str | None
    gender: str | None
    mrn: str | None
    mrn_issuer_oid: str | None = None  # assigning authority of the MRN when its system is urn:oid:…

    def to_json(self) -> dict:
        """JSON-able form for the launch store."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "PatientBanner":
        """Inverse of :meth:`to_json`."""
        return cls(**data)


def _display_name(patient: Patient) -> str | None:
    names = patient.name or []
    preferred = next((n for n in names if n.use in ("official", "usual")), names[0] if names else None)
    if preferred is None:
        return None
    if preferred.text:
        return preferred.text
    family = preferred.family or ""
    given = " ".join(preferred.given or [])
    if family and given:
        return f"{family.upper()}, {given}"
    return (family or given) or None


def _mrn(patient: Patient) -> tuple[str | None, str | None]:
    """``(mrn, issuer_oid)`` from the identifier typed MR; the OID only when the system is ``urn:oid:…``."""
    for identifier in patient.identifier or []:
        codings = (identifier.type.coding or []) if identifier.type else []
        if any(c.code == MRN_TYPE_CODE for c in codings) and identifier.value:
            system = identifier.system or ""
            oid = system[len("urn:oid:"):] if system.lower().startswith("urn:oid:") else None
            return identifier.value, oid
    return None, None


def banner_from_resource(resource: dict, patient_id: str) -> PatientBanner:
    """Build the banner from a Patient resource (JSON dict) for the launch's ``patient_id``.

    Raises ``ValueError`` when the resource is not that patient.
    """
    if resource.get("resourceType") != "Patient" or resource.get("id") != patient_id:
        raise ValueError("the Patient resource is not the launch patient")
    try:
        patient = Patient(resource, strict=False)
        birth_date = patient.birthDate.isostring if patient.birthDate else None
        mrn, issuer = _mrn(patient)
        name = _display_name(patient)
    except Exception as exc:  # fhirclient's models raise several types on wrong-typed data
        raise ValueError(f"the Patient resource could not be read ({type(exc).__name__})") from None
    return PatientBanner(patient_id=patient_id, name=name, birth_date=birth_date,
                         gender=patient.gender, mrn=mrn, mrn_issuer_oid=issuer)
