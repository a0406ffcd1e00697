"""DiagnosticReports (FHIR R4) for the pt-1001 demo studies: final, preliminary, amended, corrected, HTML, PDF.

Each report names its study in ``imagingStudy`` except ``dr-1001-us-doppler``, which is linked only by the
accession number in ``basedOn[].identifier`` (as some RIS feeds do), and ``dr-1001-mr-prior``, only by its
``identifier`` typed ``ACSN``. Texts are fixed; ``presentedForm`` carries ``text/plain``, ``text/html`` (with a
``<script>`` and an ``onclick`` the app must remove) or ``application/pdf`` (a one-page PDF built here).
"""

from __future__ import annotations

import base64
from functools import lru_cache

from .records import ACCESSION_SYSTEM, V2_0203

RADIOLOGIST = {"reference": "Practitioner/pr-radiologist", "display": "Dr. Elena Rossi, Radiology"}
RESIDENT = {"reference": "Practitioner/pr-resident", "display": "Dr. Sam Patel, Radiology resident"}

#: (report id, study id, accession, status, issued, performer, conclusion, form kind, text, link)
REPORTS = (
    ("dr-1001-ct", "is-1001-ct", "A1001001", "final", "2004-01-19T10:05:00-06:00", RADIOLOGIST,
     "No acute cardiopulmonary abnormality.", "text/plain",
     "CT CHEST WITHOUT CONTRAST\n\nFindings: Lungs are clear. No pleural effusion. Heart size normal.\n"
     "Impression: No acute cardiopulmonary abnormality.", "study"),
    ("dr-1001-ct-prior", "is-1001-ct-prior", "A1001009", "final", "2002-06-03T11:40:00-05:00", RADIOLOGIST,
     "Stable 4 mm nodule, right upper lobe.", "text/plain",
     "CT CHEST WITHOUT CONTRAST\n\nFindings: 4 mm nodule in the right upper lobe.\nImpression: Follow-up advised.",
     "study"),
    ("dr-1001-mr", "is-1001-mr", "A1001002", "preliminary", "2004-08-26T19:30:00-05:00", RESIDENT,
     "Preliminary: single demo slice, anatomy not identified; no diagnostic read.", "text/plain",
     "MR SINGLE SLICE (PRELIMINARY)\n\nDemo sample of 64 x 64 pixels; the anatomy cannot be identified.",
     "study"),
    ("dr-1001-mr-prior", "is-1001-mr-prior", "A1001010", "final", "2001-05-14T09:00:00-05:00", RADIOLOGIST,
     "Demo prior: same slice as the 2004 study.", "text/plain",
     "MR SINGLE SLICE\n\nDemo prior carrying the pixels of the later study.", "identifier"),
    ("dr-1001-us-rgb", "is-1001-us-rgb", "A1001003", "amended", "2004-08-27T08:15:00-05:00", RADIOLOGIST,
     "Amended: lymph node with preserved fatty hilum; hilar flow on power Doppler.", "text/plain",
     "US LYMPH NODE WITH POWER DOPPLER (AMENDED)\n\nAddendum: oval node, fatty hilum preserved, "
     "hilar vascularity only.", "study"),
    ("dr-1001-nm-bone", "is-1001-nm-bone", "A1001004", "final", "2004-08-27T12:00:00-05:00", RADIOLOGIST,
     "No scintigraphic evidence of osseous metastases.", "text/html",
     "<h3>NM whole body bone scan</h3><p onclick=\"alert(1)\">Symmetric uptake. <b>No focal lesions.</b></p>"
     "<script>alert('report')</script><ul><li>Impression: negative</li></ul>", "study"),
    ("dr-1001-mr-abdomen", "is-1001-mr-abdomen", "8000000000330109", "corrected", "2005-11-30T14:00:00-06:00", RADIOLOGIST,
     "Corrected: simple hepatic cyst, segment 7.", "application/pdf",
     "MR Abdomen liver protocol - corrected report: simple hepatic cyst, segment 7.", "study"),
    ("dr-1001-us-doppler", "is-1001-us-doppler", "A1001007", "final", "2011-05-25T19:00:00-05:00", RADIOLOGIST,
     "Obstetric ultrasound; see images.", "text/plain",
     "US OBSTETRIC\n\nTransabdominal obstetric sonogram; measurements in the images.", "basedOn"),
    ("dr-1001-us-cine", "is-1001-us-cine", "A1001006", "preliminary", "2016-05-03T13:30:00-05:00", RESIDENT,
     "Preliminary: parasternal long-axis cine acquired; full echo report to follow.", "text/plain",
     "ECHOCARDIOGRAM (PRELIMINARY)\n\nParasternal long-axis cine, 30 frames.", "study"),
    ("dr-1002-ct", "is-1002-ct", "A1002001", "final", "2023-03-14T10:05:00-05:00", RADIOLOGIST,
     "No acute intracranial abnormality.", "text/html",
     "<h3>CT head without contrast</h3><p>No intracranial haemorrhage, mass effect or midline shift.</p>", "study"),
)


def _pdf(text: str) -> bytes:
    """A minimal valid one-page PDF showing ``text`` (ASCII) in Helvetica."""
    safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 12 Tf 56 760 Td ({safe}) Tj ET".encode("ascii")
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _accession(value: str) -> dict:
    return {"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "system": ACCESSION_SYSTEM, "value": value}


def _resource(report_id, study_id, accession, status, issued, performer, conclusion, kind, text, link) -> dict:
    data = _pdf(text) if kind == "application/pdf" else text.encode("utf-8")
    form = {"contentType": kind, "language": "en", "data": base64.b64encode(data).decode("ascii"),
            "title": "Radiology report"}
    resource = {
        "resourceType": "DiagnosticReport", "id": report_id, "status": status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "18748-4", "display": "Diagnostic imaging study"}],
                 "text": "Radiology report"},
        "subject": {"reference": "Patient/pt-" + study_id.split("-")[1]}, "effectiveDateTime": issued, "issued": issued,
        "performer": [performer], "conclusion": conclusion, "presentedForm": [form],
    }
    if link == "study":
        resource["imagingStudy"] = [{"reference": f"ImagingStudy/{study_id}"}]
    elif link == "basedOn":
        resource["basedOn"] = [{"type": "ServiceRequest", "identifier": _accession(accession)}]
    else:
        resource["identifier"] = [_accession(accession)]
    return resource


@lru_cache(maxsize=1)
def _all() -> tuple[dict, ...]:
    return tuple(_resource(*row) for row in REPORTS)


def reports_for(patient_id: str) -> list[dict]:
    """The DiagnosticReports of ``patient_id`` (JSON-ready dicts; treat as read-only)."""
    return [r for r in _all() if r["subject"]["reference"] == f"Patient/{patient_id}"]


def report(report_id: str) -> dict | None:
    """One DiagnosticReport by id, or ``None``."""
    return next((r for r in _all() if r["id"] == report_id), None)
