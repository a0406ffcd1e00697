"""Reading DiagnosticReport resources (FHIR STU3, R4, R5) into report summaries, and linking them to studies.

Links, in order of trust (FHIR R4 §DiagnosticReport.imagingStudy; STU3 ``imagingStudy``; R5 ``study``):

1. ``imagingStudy[]`` / ``study[]`` references ``ImagingStudy/<id>`` (relative or absolute);
2. an accession number (``identifier`` typed ``ACSN``, or ``basedOn[].identifier`` typed ``ACSN``)
   equal to a study's accession number.

``presentedForm`` (Attachment): ``text/plain`` is kept as text; ``text/html`` is kept only after nh3 (ammonia,
a maintained HTML sanitiser) has cleaned it to a small set of formatting tags; ``application/pdf`` is not kept in
the summary (only its index: the app serves it from a fresh read, see :func:`pdf_bytes`). Text is bounded.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, fields
from typing import Any, Iterable

import nh3

from .imaging import ACCESSION_TYPE, StudySummary

MAX_TEXT = 20_000
MAX_PDF_BYTES = 10 * 1024 * 1024
REPORT_STATUSES = {"registered": "Registered", "partial": "Partial", "preliminary": "Preliminary",
                   "final": "Final", "amended": "Amended", "corrected": "Corrected", "appended": "Appended",
                   "cancelled": "Cancelled", "entered-in-error": "Entered in error", "unknown": "Unknown"}
ALLOWED_TAGS = {"p", "br", "b", "strong", "i", "em", "u", "ul", "ol", "li", "h3", "h4", "h5", "h6", "table",
                "thead", "tbody", "tr", "th", "td", "span", "div", "pre", "sub", "sup"}


def sanitise_html(html: str) -> str:
    """Report HTML reduced to formatting tags (no attributes, scripts, styles, links, images or forms)."""
    return nh3.clean(html[:MAX_TEXT * 5], tags=ALLOWED_TAGS, attributes={}, url_schemes=set(),
                     strip_comments=True, link_rel=None)


@dataclass(frozen=True)
class ReportSummary:
    """One report as the list shows it.

    ``study_refs``: ImagingStudy ids it names; ``accessions``: accession numbers it carries; ``html``: already
    sanitised; ``pdf_index``: the ``presentedForm`` index of a PDF, when there is one.
    """

    id: str | None
    status: str | None
    issued: str | None
    effective: str | None
    code_text: str | None
    performers: tuple[str, ...]
    conclusion: str | None
    text: str | None
    html: str | None
    pdf_index: int | None
    pdf_title: str | None
    study_refs: tuple[str, ...]
    accessions: tuple[str, ...]

    @property
    def status_label(self) -> str:
        """``Final``, ``Preliminary``, … (``Report`` when the status is missing or unknown)."""
        return REPORT_STATUSES.get(self.status or "", "Report")

    @property
    def date(self) -> str:
        """``YYYY-MM-DD HH:MM`` of ``issued`` (else ``effective``), or ``""``."""
        value = self.issued or self.effective or ""
        return value.replace("T", " ")[:16]

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (for the launch store's list cache)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("performers", "study_refs", "accessions"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ReportSummary":
        """Inverse of :meth:`to_json`."""
        return cls(**{**data, **{n: tuple(data.get(n) or ()) for n in ("performers", "study_refs", "accessions")}})


def _dicts(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(value: Any, limit: int = 1000) -> str | None:
    return value[:limit] or None if isinstance(value, str) else None


def _reference_id(reference: Any, resource_type: str) -> str | None:
    """``ImagingStudy/x`` (or an absolute URL ending so, ``_history`` ignored) -> ``x``."""
    ref = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(ref, str):
        return None
    parts = [p for p in ref.split("?")[0].split("/") if p]
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    return parts[-1] if len(parts) >= 2 and parts[-2] == resource_type else None


def _is_accession(identifier: Any) -> bool:
    if not isinstance(identifier, dict):
        return False
    concept = identifier.get("type")
    codings = _dicts(concept.get("coding")) if isinstance(concept, dict) else []
    return any(c.get("code") == ACCESSION_TYPE for c in codings) and isinstance(identifier.get("value"), str)


def _performer(reference: Any) -> str | None:
    if not isinstance(reference, dict):
        return None
    actor = reference.get("actor") if isinstance(reference.get("actor"), dict) else reference  # STU3 performer.actor
    return _text(actor.get("display"), 200) or _text(actor.get("reference"), 200)


def _decoded_text(attachment: dict) -> str | None:
    data = attachment.get("data")
    if not isinstance(data, str):
        return None
    try:
        raw = base64.b64decode(data[: MAX_TEXT * 8], validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.decode("utf-8", errors="replace")[:MAX_TEXT * 5]


def _media_type(attachment: dict) -> str:
    value = attachment.get("contentType")
    return value.split(";")[0].strip().lower() if isinstance(value, str) else ""


def summarize_report(resource: dict) -> ReportSummary:
    """Read one DiagnosticReport (STU3/R4/R5 JSON) into a :class:`ReportSummary`. Never raises on odd data."""
    text = html = None
    pdf_index = pdf_title = None
    for index, attachment in enumerate(_dicts(resource.get("presentedForm"))):
        kind = _media_type(attachment)
        if kind == "text/plain" and text is None:
            text = (_decoded_text(attachment) or "")[:MAX_TEXT] or None
        elif kind == "text/html" and html is None:
            decoded = _decoded_text(attachment)
            html = sanitise_html(decoded) if decoded else None
        elif kind == "application/pdf" and pdf_index is None and isinstance(attachment.get("data"), str):
            pdf_index, pdf_title = index, _text(attachment.get("title"), 200)
    code = resource.get("code") if isinstance(resource.get("code"), dict) else {}
    code_text = _text(code.get("text"), 200) or next(
        (_text(c.get("display"), 200) for c in _dicts(code.get("coding")) if _text(c.get("display"))), None)
    refs = [_reference_id(r, "ImagingStudy") for r in _dicts(resource.get("imagingStudy"))]
    refs += [_reference_id(r.get("reference") if isinstance(r.get("reference"), dict) else r, "ImagingStudy")
             for r in _dicts(resource.get("study"))]  # R5 study (Reference(GenomicStudy | ImagingStudy))
    accessions = [i["value"] for i in _dicts(resource.get("identifier")) if _is_accession(i)]
    accessions += [b["identifier"]["value"] for b in _dicts(resource.get("basedOn")) if _is_accession(b.get("identifier"))]
    effective = resource.get("effectiveDateTime")
    if not isinstance(effective, str) and isinstance(resource.get("effectivePeriod"), dict):
        effective = resource["effectivePeriod"].get("start")
    return ReportSummary(
        id=_text(resource.get("id"), 64), status=_text(resource.get("status"), 32),
        issued=_text(resource.get("issued"), 40), effective=_text(effective, 40), code_text=code_text,
        performers=tuple(dict.fromkeys(p for p in map(_performer, _dicts(resource.get("performer"))) if p)),
        conclusion=_text(resource.get("conclusion"), MAX_TEXT), text=text, html=html,
        pdf_index=pdf_index, pdf_title=pdf_title,
        study_refs=tuple(dict.fromkeys(r for r in refs if r)), accessions=tuple(dict.fromkeys(accessions)))


def _newest(reports: Iterable[ReportSummary]) -> ReportSummary:
    return max(reports, key=lambda r: r.issued or r.effective or "")


def reports_by_study(studies: Iterable[StudySummary], reports: Iterable[ReportSummary]) -> dict[str, ReportSummary]:
    """Study id -> its report: by ImagingStudy reference first, then by accession number; the newest wins.

    Reports ``entered-in-error`` are left out.
    """
    usable = [r for r in reports if r.status != "entered-in-error"]
    by_ref: dict[str, list[ReportSummary]] = {}
    by_accession: dict[str, list[ReportSummary]] = {}
    for report in usable:
        for ref in report.study_refs:
            by_ref.setdefault(ref, []).append(report)
        for accession in report.accessions:
            by_accession.setdefault(accession, []).append(report)
    linked: dict[str, ReportSummary] = {}
    for study in studies:
        if not study.id:
            continue
        candidates = by_ref.get(study.id) or (by_accession.get(study.accession_number or "") or [])
        if candidates:
            linked[study.id] = _newest(candidates)
    return linked


def report_subject(resource: dict) -> str | None:
    """The Patient id a DiagnosticReport names in ``subject``, else ``None``."""
    return _reference_id(resource.get("subject"), "Patient")


def pdf_bytes(resource: dict, index: int) -> bytes | None:
    """The decoded PDF at ``presentedForm[index]`` (must be ``application/pdf``, start ``%PDF-``, ≤ 10 MiB)."""
    forms = _dicts(resource.get("presentedForm"))
    if not 0 <= index < len(forms) or _media_type(forms[index]) != "application/pdf":
        return None
    data = forms[index].get("data")
    if not isinstance(data, str) or len(data) > MAX_PDF_BYTES * 4 // 3 + 4:
        return None
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if raw.startswith(b"%PDF-") else None
