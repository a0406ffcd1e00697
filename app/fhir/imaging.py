"""Reading ImagingStudy resources of any FHIR version into one study summary.

Shapes handled (FHIR DSTU2 1.0.2, STU3 3.0.2, R4 4.0.1, R4B 4.3.0, R5 5.0.0 ImagingStudy):

* Study Instance UID (DICOM PS3.3 C.7.2.1, tag 0020,000D): the identifier with
  system ``urn:dicom:uid``, else an identifier whose value starts with
  ``urn:oid:``, else an identifier typed DICOM tag ``0020000D``, else the
  DSTU2/STU3 ``uid``; the ``urn:oid:`` prefix (RFC 3001) is stripped.
* Accession number: an identifier typed ``ACSN`` (HL7 v2 table 0203), the
  DSTU2/STU3 ``accession``, or (R5) ``basedOn[].identifier`` typed ``ACSN``.
* Modalities: ``modalityList`` (DSTU2/STU3), ``modality`` as Coding (R4/R4B)
  or CodeableConcept (R5), else the series' modalities.
* Endpoints (:mod:`app.fhir.endpoints`): contained ones resolved here, other
  references kept in ``endpoint_refs`` for the list to resolve; DSTU2 ``url``.
* The thumbnail's instance: :func:`app.dicom.representative_instance` over the
  series (``uid``, ``modality``, ``number``, ``instance[].uid`` / ``number``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from operator import attrgetter
from datetime import datetime, timezone
from typing import Any, Iterable

from ..dicom import MAX_UID_LENGTH, NON_IMAGE_MODALITIES, OID_PREFIX, SeriesSketch, normalize_study_uid, representative_instance
from .endpoints import dstu2_dicomweb_base, endpoint_references, resolve_contained

DICOM_UID_SYSTEM = "urn:dicom:uid"
STUDY_UID_TAGS = {"0020000D", "(0020,000D)", "0020,000D"}
ACCESSION_TYPE = "ACSN"
MAX_TEXT = 1000
FLAGGED_STATUSES = {"cancelled": "Cancelled", "entered-in-error": "Entered in error"}


@dataclass(frozen=True)
class StudySummary:
    """One row of the study list.

    ``started``: the FHIR dateTime as given; ``started_sort``: POSIX seconds (UTC) or ``None``;
    ``study_instance_uid``: valid UID or ``None`` with ``viewer_problem`` saying why the viewer is off.
    """

    id: str | None
    study_instance_uid: str | None
    viewer_problem: str | None
    started: str | None
    started_sort: float | None
    modalities: tuple[str, ...]
    description: str | None
    accession_number: str | None
    number_of_series: int | None
    number_of_instances: int | None
    status: str | None
    body_sites: tuple[str, ...] = ()
    series_descriptions: tuple[str, ...] = ()
    endpoint_refs: tuple[str, ...] = ()
    iid_address: str | None = None
    viewer_base_url: str | None = None
    dicomweb_base: str | None = None
    thumbnail_series_uid: str | None = None
    thumbnail_instance_uid: str | None = None
    source: str = "fhir"
    """Optional fields (defaults keep cached lists of earlier versions readable): ``endpoint_refs``: Endpoint
    references not yet resolved; ``iid_address``: an ``ihe-iid`` Endpoint's address as found; ``viewer_base_url``:
    that address when its origin is in the registration's ``viewer_origins`` (else ``None``: use ``viewer.base_url``);
    ``dicomweb_base``: the study's DICOMweb base (``dicom-wado-rs``); ``thumbnail_series_uid`` /
    ``thumbnail_instance_uid``: the representative instance; ``source``: ``"fhir"`` or ``"qido"``."""

    @property
    def viewable(self) -> bool:
        """True when the study can be opened in the IID viewer (valid UID, not entered in error)."""
        return bool(self.study_instance_uid) and self.viewer_problem is None

    @property
    def status_flag(self) -> str | None:
        """Human label when the study is cancelled or entered in error, else ``None``."""
        return FLAGGED_STATUSES.get(self.status or "")

    @property
    def started_display(self) -> str:
        """``YYYY-MM-DD HH:MM`` (time as recorded by the EHR), the date alone, or ``""``."""
        if not self.started:
            return ""
        text = self.started.replace("T", " ")
        return text[:16] if len(text) >= 16 else text[:10]

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (for the launch store's list cache); a flat copy, no deep copy needed."""
        data = {name: getattr(self, name) for name in _SUMMARY_FIELDS}
        data["modalities"] = list(self.modalities)
        data["body_sites"] = list(self.body_sites)
        data["series_descriptions"] = list(self.series_descriptions)
        data["endpoint_refs"] = list(self.endpoint_refs)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StudySummary":
        """Inverse of :meth:`to_json`."""
        known = {k: v for k, v in data.items() if k in _SUMMARY_FIELDS}
        return cls(**{**known, "modalities": tuple(data.get("modalities") or ()),
                      "body_sites": tuple(data.get("body_sites") or ()),
                      "series_descriptions": tuple(data.get("series_descriptions") or ()),
                      "endpoint_refs": tuple(data.get("endpoint_refs") or ())})


    def with_changes(self, changes: dict[str, Any]) -> "StudySummary":
        """A copy with ``changes`` (field name → value) applied: :func:`dataclasses.replace` without running the
        frozen ``__init__`` again (measured 5 times faster; there is no ``__post_init__``). Unknown names raise
        ``TypeError`` as ``replace`` does."""
        unknown = changes.keys() - _FIELD_SET
        if unknown:
            raise TypeError(f"StudySummary has no field {sorted(unknown)[0]!r}")
        copy = object.__new__(StudySummary)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy

    def to_row(self) -> list[Any]:
        """The compact stored form: the field values in :data:`SUMMARY_FIELDS` order (tuples stay tuples,
        JSON arrays once encoded); about half the bytes of :meth:`to_json` and no key per field."""
        return list(_ROW(self))

    @classmethod
    def from_row(cls, row: list[Any], names: tuple[str, ...] | None = None) -> "StudySummary":
        """Inverse of :meth:`to_row`; ``names``: the field names the row was written with, when they are not
        this version's :data:`SUMMARY_FIELDS` (an earlier version's list: unknown names dropped, defaults kept).

        The row is the app's own (sealed in its store): the instance is filled without the frozen
        dataclass's per-field ``object.__setattr__`` (about 3 times faster; there is no ``__post_init__``).
        """
        if (names is not None and names != _SUMMARY_FIELDS) or len(row) != len(_SUMMARY_FIELDS):
            return cls.from_json(dict(zip(names or _SUMMARY_FIELDS, row)))
        values = list(row)
        for index in _TUPLE_INDEXES:
            values[index] = tuple(values[index] or ())
        summary = object.__new__(cls)
        summary.__dict__.update(zip(_SUMMARY_FIELDS, values))
        return summary


_SUMMARY_FIELDS = tuple(f.name for f in fields(StudySummary))
SUMMARY_FIELDS = _SUMMARY_FIELDS
_FIELD_SET = frozenset(_SUMMARY_FIELDS)
"""The names of :meth:`StudySummary.to_row`'s values, in order."""
_ROW = attrgetter(*_SUMMARY_FIELDS)
_TUPLE_INDEXES = tuple(i for i, name in enumerate(_SUMMARY_FIELDS)
                       if name in ("modalities", "body_sites", "series_descriptions", "endpoint_refs"))


def _dicts(value: Any) -> list[dict]:
    """The objects of a JSON array; anything that is not an array gives ``[]`` (upstream data is not trusted)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    """A non-empty string (cut to 1,000 characters), a number as text, else ``None``."""
    if isinstance(value, str):
        return value[:MAX_TEXT] or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _codings(value: Any) -> Iterable[dict]:
    """Codings of a Coding or CodeableConcept (or a list of either)."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            continue
        if "coding" in item:
            yield from _dicts(item.get("coding"))
        elif "code" in item:
            yield item


def _is_typed(identifier: dict, codes: set[str] | frozenset[str]) -> bool:
    """True when a Coding of ``identifier.type`` has a ``code`` in ``codes`` (as ``_codings`` reads them)."""
    kind = identifier.get("type")
    if kind is None:
        return False
    for item in kind if isinstance(kind, list) else (kind,):
        if not isinstance(item, dict):
            continue
        if "coding" in item:
            codings = item["coding"]
            for coding in codings if isinstance(codings, list) else ():
                if isinstance(coding, dict):
                    code = coding.get("code")
                    if isinstance(code, str) and code in codes:
                        return True
        elif "code" in item:
            code = item["code"]
            if isinstance(code, str) and code in codes:
                return True
    return False


_ACCESSION_TYPES = frozenset({ACCESSION_TYPE})


def _identifiers(resource: dict) -> list[dict]:
    return _dicts(resource.get("identifier"))


def study_instance_uid(resource: dict) -> tuple[str | None, str | None]:
    """``(uid, problem)``: the normalised Study Instance UID, or ``None`` and why there is none."""
    identifiers = _identifiers(resource)
    candidates = (
        [i.get("value") for i in identifiers if i.get("system") == DICOM_UID_SYSTEM]
        or [i.get("value") for i in identifiers
            if isinstance(i.get("value"), str) and i["value"].lower().startswith(OID_PREFIX)]
        or [i.get("value") for i in identifiers if _is_typed(i, STUDY_UID_TAGS)]
        or ([resource["uid"]] if isinstance(resource.get("uid"), str) and resource["uid"] else []))
    if not candidates:
        return None, "No Study Instance UID recorded for this study"
    uid = normalize_study_uid(candidates[0])
    if uid is None:
        return None, "The recorded Study Instance UID is not a valid DICOM UID"
    return uid, None


def accession_number(resource: dict) -> str | None:
    """The accession number (identifier typed ACSN, STU3 ``accession``, or R5 ``basedOn.identifier``)."""
    for identifier in _identifiers(resource):
        if _is_typed(identifier, _ACCESSION_TYPES) and _text(identifier.get("value")):
            return _text(identifier["value"])
    accession = resource.get("accession")
    if isinstance(accession, dict) and _text(accession.get("value")):
        return _text(accession["value"])
    for based_on in _dicts(resource.get("basedOn")):
        identifier = based_on.get("identifier")
        if isinstance(identifier, dict) and _is_typed(identifier, _ACCESSION_TYPES) \
                and _text(identifier.get("value")):
            return _text(identifier["value"])
    return None


def modalities(resource: dict) -> tuple[str, ...]:
    """Distinct modality codes in order (``("CT", "MR")``), study level first, else from the series."""
    codes = [c.get("code") for c in _codings(resource.get("modalityList") or resource.get("modality") or [])]
    if not any(codes):
        codes = [c.get("code") for s in _dicts(resource.get("series")) for c in _codings(s.get("modality"))]
    return tuple(dict.fromkeys(str(c)[:16] for c in codes if isinstance(c, str) and c))


def _description(resource: dict) -> str | None:
    if _text(resource.get("description")):
        return _text(resource["description"])
    for concept in _dicts(resource.get("procedureCode")):
        if _text(concept.get("text")):
            return _text(concept["text"])
        for coding in _codings(concept):
            if _text(coding.get("display")):
                return _text(coding["display"])
    for series in _dicts(resource.get("series")):
        if _text(series.get("description")):
            return _text(series["description"])
    return None


def _concept_text(value: Any) -> str | None:
    """Words of a Coding / CodeableConcept: ``text``, else the first ``display``, else the first ``code``."""
    if not isinstance(value, dict):
        return None
    if _text(value.get("text")):
        return _text(value["text"])
    codings = list(_codings(value)) or [value]  # a bare Coding may carry only a display
    for key in ("display", "code"):
        for coding in codings:
            if _text(coding.get(key)):
                return _text(coding[key])
    return None


def body_sites(resource: dict) -> tuple[str, ...]:
    """Distinct body sites of the series (R4 Coding ``bodySite``, R5 CodeableReference ``bodySite.concept``)."""
    found = []
    for series in _dicts(resource.get("series")):
        site = series.get("bodySite")
        if isinstance(site, dict) and isinstance(site.get("concept"), dict):
            site = site["concept"]
        text = _concept_text(site)
        if text:
            found.append(text[:64])
    return tuple(dict.fromkeys(found))


def series_descriptions(resource: dict) -> tuple[str, ...]:
    """Distinct series descriptions, in series order (at most 50)."""
    found = [_text(s.get("description")) for s in _dicts(resource.get("series"))]
    return tuple(dict.fromkeys(t for t in found if t))[:50]


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _counts(resource: dict) -> tuple[int | None, int | None]:
    return _counts_of(resource, _dicts(resource.get("series")))


def _counts_of(resource: dict, series: list[dict]) -> tuple[int | None, int | None]:
    n_series = _count(resource.get("numberOfSeries"))
    if n_series is None and series:
        n_series = len(series)
    n_instances = _count(resource.get("numberOfInstances"))
    if n_instances is None and series:
        per_series = [_count(s.get("numberOfInstances")) or len(_dicts(s.get("instance"))) for s in series]
        n_instances = sum(per_series)
    return n_series, n_instances


def _sort_key(started: Any) -> float | None:
    if not isinstance(started, str) or len(started) < 4:
        return None
    text = started.replace("Z", "+00:00")
    for candidate in (text, text[:10], text[:7] + "-01", text[:4] + "-01-01"):
        try:
            moment = datetime.fromisoformat(candidate)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            return moment.timestamp()
        except (ValueError, OverflowError):
            continue
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def series_sketches(resource: dict) -> list[SeriesSketch]:
    """The series of an ImagingStudy (any version) as :class:`~app.dicom.SeriesSketch` (UIDs as recorded)."""
    sketches = []
    for series in _dicts(resource.get("series")):
        if not isinstance(series.get("uid"), str):
            continue
        codes = [c.get("code") for c in _codings(series.get("modality"))]
        modality = next((c for c in codes if isinstance(c, str) and c), None)
        instances = tuple((i["uid"], _int(i.get("number"))) for i in _dicts(series.get("instance"))
                          if isinstance(i.get("uid"), str))
        sketches.append(SeriesSketch(series["uid"], modality, _int(series.get("number")), instances))
    return sketches


def started_sort_key(started: Any) -> float | None:
    """POSIX seconds (UTC when no offset) of a FHIR date/dateTime, for :attr:`StudySummary.started_sort`."""
    return _sort_key(started)


def _first_code(value: Any) -> str | None:
    """The first non-empty string ``code`` of a Coding / CodeableConcept (or a list of either), else ``None``
    (what ``next(c for c in _codings(value) ...)`` gives, without the generator)."""
    for item in value if isinstance(value, list) else (value,):
        if not isinstance(item, dict):
            continue
        if "coding" in item:
            codings = item["coding"]
            for coding in codings if isinstance(codings, list) else ():
                if isinstance(coding, dict):
                    code = coding.get("code")
                    if isinstance(code, str) and code:
                        return code
        elif "code" in item:
            code = item["code"]
            if isinstance(code, str) and code:
                return code
    return None


def _instance_order(item: tuple[str, int | None]) -> tuple[bool, int]:
    return item[1] is None, item[1] or 0


def _series_order(item: tuple[dict, str, int | None]) -> tuple[bool, int]:
    return item[2] is None, item[2] or 0


def _uid(value: str) -> str | None:
    """:func:`~app.dicom.normalize_study_uid` of a string, with a fast path for a plain UID (ASCII digits in
    dot-separated components, at most 64 characters: returned as it is, as the regular expression would)."""
    if len(value) <= MAX_UID_LENGTH and value.isascii() and value.replace(".", "").isdigit() \
            and value[0] != "." and value[-1] != "." and ".." not in value:
        return value
    return normalize_study_uid(value)


def _representative(series: list[dict]) -> tuple[str, str] | None:
    """:func:`~app.dicom.representative_instance` of :func:`series_sketches`, read straight from the series
    dicts: only the chosen series' instances are read (the same choice, measured 3 times faster on a
    1,000-study page)."""
    candidates = []
    for item in series:
        uid = item.get("uid")
        if not isinstance(uid, str):
            continue
        modality = _first_code(item.get("modality"))
        if (modality or "").upper() in NON_IMAGE_MODALITIES:
            continue
        number = item.get("number")
        candidates.append((item, uid, number if isinstance(number, int) and not isinstance(number, bool) else None))
    if len(candidates) > 1:
        candidates.sort(key=_series_order)
    for item, uid, _ in candidates:  # the order is stable: filtering by UID after sorting picks the same
        uid = _uid(uid)
        if not uid:
            continue
        instances = []
        listed = item.get("instance")
        for instance in listed if isinstance(listed, list) else ():
            if isinstance(instance, dict):
                instance_uid = instance.get("uid")
                if isinstance(instance_uid, str) and (instance_uid := _uid(instance_uid)):
                    instances.append((instance_uid, _int(instance.get("number"))))
        if instances:
            if len(instances) > 1:
                instances.sort(key=_instance_order)
            return uid, instances[(len(instances) - 1) // 2][0]
    return None


def _series_words(series: list[dict]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(body_sites, series_descriptions)`` of the series in one pass (as :func:`body_sites` and
    :func:`series_descriptions`)."""
    sites: dict[str, None] = {}
    descriptions: dict[str, None] = {}
    for item in series:
        site = item.get("bodySite")
        if isinstance(site, dict):
            if isinstance(site.get("concept"), dict):
                site = site["concept"]
            text = _concept_text(site)
            if text:
                sites[text[:64]] = None
        description = item.get("description")
        if isinstance(description, str):
            if description:
                descriptions[description[:MAX_TEXT]] = None
        elif (text := _text(description)) is not None:
            descriptions[text] = None
    return tuple(sites), tuple(descriptions)[:50]


_NEW = object.__new__


def summarize(resource: dict) -> StudySummary:
    """Read one ImagingStudy (any version's JSON) into a :class:`StudySummary`. Never raises on odd data.

    The series are listed once and read in one pass for the body sites and descriptions; the thumbnail's
    instance is read from the chosen series only (about 2.5 times faster than the one-function-per-field
    reading, measured on a 1,000-study sandbox page: ``bench/decode.py``).
    """
    uid, problem = study_instance_uid(resource)
    status = resource.get("status")
    if not isinstance(status, str):
        status = None
    if uid and status == "entered-in-error":
        problem = "This study was entered in error in the EHR"
    started = resource.get("started")
    if not isinstance(started, str):
        started = None
    resource_id = resource.get("id")
    series = _dicts(resource.get("series"))
    n_series, n_instances = _counts_of(resource, series)
    found, pending = resolve_contained(resource, endpoint_references(resource))
    representative = _representative(series)
    sites, descriptions = _series_words(series)
    summary = _NEW(StudySummary)
    summary.__dict__.update(
        id=resource_id if isinstance(resource_id, str) else None,
        study_instance_uid=uid, viewer_problem=problem,
        started=started, started_sort=_sort_key(started),
        modalities=modalities(resource), description=_description(resource),
        accession_number=accession_number(resource),
        number_of_series=n_series, number_of_instances=n_instances, status=status,
        body_sites=sites, series_descriptions=descriptions,
        endpoint_refs=pending, iid_address=found.iid_address, viewer_base_url=None,
        dicomweb_base=found.dicomweb_base or dstu2_dicomweb_base(resource, uid),
        thumbnail_series_uid=representative[0] if representative else None,
        thumbnail_instance_uid=representative[1] if representative else None, source="fhir")
    return summary


def newest_first(studies: Iterable[StudySummary]) -> list[StudySummary]:
    """Sort by ``started`` descending; undated studies last (stable otherwise)."""
    return sorted(studies, key=lambda s: (s.started_sort is None, -(s.started_sort or 0.0)))
