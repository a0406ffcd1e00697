"""ImagingStudy search: strict parameter parsing, filtering, sorting and paging.

FHIR R4 §3.1.1.4 (search), §3.1.1.4.1 (date prefixes and implicit ranges),
§3.1.1.4.5 (token), §3.1.1.5.6 (_sort), §3.1.1.5.7 (_count), paging via
``_getpagesoffset`` (HAPI-style offset) in absolute ``self``/``next``/``previous``
links. Unknown parameters are rejected as with ``Prefer: handling=strict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
import re
from typing import Callable, Iterable
from urllib.parse import urlencode

from werkzeug.datastructures import MultiDict

from .demo_studies import SITE_TIMEZONE
from .outcome import FhirError
from .records import DCM_SYSTEM, StudyRecord

DEFAULT_COUNT = 50
MAX_COUNT = 1000
SEARCH_PARAMETERS = ("patient", "subject", "started", "modality", "status")
CONTROL_PARAMETERS = ("_count", "_sort", "_getpagesoffset", "_format", "_pretty", "_include")
#: ``_include`` values understood (FHIR R4 §3.1.1.5.4): the ImagingStudy's Endpoint references
INCLUDE_VALUES = ("ImagingStudy:endpoint", "ImagingStudy:endpoint:Endpoint")
STATUS_CODES = ("registered", "available", "cancelled", "entered-in-error", "unknown")
DATE_PREFIXES = ("eq", "ne", "ge", "le", "gt", "lt")

_DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,6}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def _bad(diagnostics: str) -> FhirError:
    return FhirError(400, "invalid", diagnostics)


@dataclass(frozen=True)
class DateFilter:
    """``started`` criterion: prefix and the half-open range ``[low, high)`` of the value's precision."""

    prefix: str
    low: datetime
    high: datetime

    def matches(self, value: datetime | None) -> bool:
        """Apply R4 prefix semantics for a point-in-time target (None never matches)."""
        if value is None:
            return False
        if self.prefix == "eq":
            return self.low <= value < self.high
        if self.prefix == "ne":
            return not self.low <= value < self.high
        if self.prefix == "ge":
            return value >= self.low
        if self.prefix == "gt":
            return value >= self.high
        if self.prefix == "le":
            return value < self.high
        return value < self.low  # lt


@dataclass
class SearchQuery:
    """A validated ImagingStudy search.

    ``patient_id``: the compartment asked for (None if absent); ``count``:
    page size 0..1000; ``offset``: index of the first match on this page;
    ``descending``: sort on ``started`` newest first; ``params``: the
    non-paging parameters as ``(name, value)`` pairs, for building links;
    ``include_endpoints``: ``_include=ImagingStudy:endpoint`` was asked.
    """

    patient_id: str | None
    count: int = DEFAULT_COUNT
    offset: int = 0
    descending: bool = True
    sort_param: str | None = None
    dates: list[DateFilter] = field(default_factory=list)
    modalities: list[list[tuple[str | None, str]]] = field(default_factory=list)
    statuses: list[set[str]] = field(default_factory=list)
    params: list[tuple[str, str]] = field(default_factory=list)
    include_endpoints: bool = False


def parse_date_value(raw: str) -> DateFilter:
    """Parse ``[prefix]YYYY[-MM[-DD[Thh:mm[:ss[.f]][tz]]]]``; raises :class:`FhirError` 400.

    A value without time zone is read in the site time zone (America/Chicago).
    A ``' '`` where a ``+`` offset belongs (an unescaped ``+``) is accepted.
    """
    prefix = raw[:2] if raw[:2] in DATE_PREFIXES else "eq"
    text = raw[2:] if raw[:2] in DATE_PREFIXES else raw
    text = text.replace(" ", "+")
    match = _DATE_RE.match(text)
    if not match:
        raise _bad(f"started: {raw!r} is not a valid FHIR date or dateTime")
    parts = match.groupdict()
    try:
        tz = SITE_TIMEZONE
        if parts["tz"]:
            tz = datetime.fromisoformat("2000-01-01T00:00:00" + parts["tz"].replace("Z", "+00:00")).tzinfo
        year, month, day = int(parts["y"]), int(parts["m"] or 1), int(parts["d"] or 1)
        hour, minute, second = int(parts["H"] or 0), int(parts["M"] or 0), int(parts["S"] or 0)
        micro = int((parts["f"] or "0").ljust(6, "0"))
        low = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        raise _bad(f"started: {raw!r} is not a valid calendar date") from None
    if parts["S"] is not None:
        high = low + timedelta(seconds=1)
    elif parts["M"] is not None:
        high = low + timedelta(minutes=1)
    elif parts["d"]:
        high = low + timedelta(days=1)
    elif parts["m"]:
        high = low.replace(year=year + (month == 12), month=month % 12 + 1)
    else:
        high = low.replace(year=year + 1)
    return DateFilter(prefix, low, high)


def _single(args: MultiDict, name: str) -> str | None:
    values = args.getlist(name)
    if len(values) > 1:
        raise _bad(f"{name} may appear only once")
    return values[0] if values else None


def _int_param(args: MultiDict, name: str, default: int) -> int:
    raw = _single(args, name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise _bad(f"{name} must be a non-negative integer, got {raw!r}")
    return int(raw)


def _patient_reference(name: str, raw: str, fhir_base_url: str) -> str:
    value = raw.removeprefix(fhir_base_url + "/")
    if "," in value:
        raise _bad(f"{name}: only one patient per search is supported")
    if value.startswith("Patient/"):
        value = value[len("Patient/"):]
    elif "/" in value:
        raise _bad(f"{name}: {raw!r} is not a Patient reference")
    if not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", value):
        raise _bad(f"{name}: {raw!r} is not a valid Patient id")
    return value


def parse_search(args: MultiDict, fhir_base_url: str) -> SearchQuery:
    """Validate *args* (request query) into a :class:`SearchQuery`.

    Raises :class:`FhirError` 400 (``invalid``) for unknown parameters
    (modifiers such as ``:exact`` included), repeated single-valued parameters,
    bad ``_count``/``_getpagesoffset``/``_sort``/``started``/``status``/``modality``
    values, or ``patient`` and ``subject`` naming different patients.
    """
    allowed = set(SEARCH_PARAMETERS) | set(CONTROL_PARAMETERS)
    unknown = sorted(set(args.keys()) - allowed)
    if unknown:
        raise _bad(f"unknown or unsupported search parameter(s): {', '.join(unknown)}")
    patient_ids = set()
    for name in ("patient", "subject"):
        raw = _single(args, name)
        if raw is not None:
            patient_ids.add(_patient_reference(name, raw, fhir_base_url))
    if len(patient_ids) > 1:
        raise _bad("patient and subject name different patients")
    query = SearchQuery(patient_id=next(iter(patient_ids), None))
    query.count = min(_int_param(args, "_count", DEFAULT_COUNT), MAX_COUNT)
    query.offset = _int_param(args, "_getpagesoffset", 0)
    sort = _single(args, "_sort")
    if sort is not None:
        if sort not in ("started", "-started"):
            raise _bad(f"_sort: unsupported sort {sort!r} (supported: started, -started)")
        query.descending = sort.startswith("-")
        query.sort_param = sort
    for raw in args.getlist("started"):
        query.dates.append(parse_date_value(raw))
    for raw in args.getlist("modality"):
        alternatives = []
        for item in raw.split(","):
            system, bar, code = item.rpartition("|")
            if not re.fullmatch(r"[A-Z0-9_]{1,16}", code):
                raise _bad(f"modality: {item!r} is not a DICOM modality token ([{DCM_SYSTEM}|]CODE)")
            alternatives.append((system if bar else None, code))
        query.modalities.append(alternatives)
    for raw in args.getlist("status"):
        values = set(raw.split(","))
        bad = values - set(STATUS_CODES)
        if bad:
            raise _bad(f"status: unknown code(s) {', '.join(sorted(bad))}")
        query.statuses.append(values)
    for raw in args.getlist("_include"):
        if raw not in INCLUDE_VALUES:
            raise _bad(f"_include: {raw!r} is not supported (supported: {', '.join(INCLUDE_VALUES)})")
        query.include_endpoints = True
    query.params = [(k, v) for k, v in args.items(multi=True) if k in SEARCH_PARAMETERS or k in ("_sort", "_include")]
    return query


def _matches(study: StudyRecord, query: SearchQuery) -> bool:
    if any(not f.matches(study.started) for f in query.dates):
        return False
    modalities = set(study.modalities)
    if any(
        not any(code in modalities and system in (None, "", DCM_SYSTEM) for system, code in alts)
        for alts in query.modalities
    ):
        return False
    return all(study.status in values for values in query.statuses)


def run_search(studies: Iterable[StudyRecord], query: SearchQuery) -> list[StudyRecord]:
    """All matches of *query* in sort order (``started``; undated last; id breaks ties)."""
    matches = [s for s in studies if _matches(s, query)]
    dated = sorted((s for s in matches if s.started), key=lambda s: (s.started, s.id), reverse=query.descending)
    return dated + sorted((s for s in matches if not s.started), key=lambda s: s.id)


def page_links(url_for_params: Callable[[list[tuple[str, str]]], str], query: SearchQuery, total: int) -> list[dict]:
    """Bundle ``link`` list: ``self``, ``first``, ``previous`` (if any), ``next`` (if any), ``last``.

    *url_for_params* turns ``(name, value)`` pairs into an absolute search URL.
    """
    count = query.count

    def link(relation: str, offset: int) -> dict:
        params = list(query.params) + [("_count", str(count)), ("_getpagesoffset", str(offset))]
        return {"relation": relation, "url": url_for_params(params)}

    links = [link("self", query.offset), link("first", 0)]
    if count and query.offset > 0:
        links.append(link("previous", max(query.offset - count, 0)))
    if count and query.offset + count < total:
        links.append(link("next", query.offset + count))
    if count:
        links.append(link("last", max((total - 1) // count * count, 0)))
    return links


def search_url(fhir_base_url: str, params: list[tuple[str, str]]) -> str:
    """Absolute ``<fhir_base_url>/ImagingStudy?<urlencoded params>``."""
    return f"{fhir_base_url}/ImagingStudy?{urlencode(params)}"
