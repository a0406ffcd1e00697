"""Where a study's images are: ``ImagingStudy.endpoint`` / ``series.endpoint`` resolved to Endpoint facts.

FHIR R4 §ImagingStudy.endpoint ("the network service providing access for the
study") and §Endpoint. Each reference is resolved, in this order, from

* a contained resource (``#id``, FHIR R4 §2.35 Contained resources),
* the search Bundle: entries with ``search.mode`` ``include``, asked for with
  ``_include=ImagingStudy:endpoint`` (FHIR R4 §3.1.1.5.5), matched by
  ``fullUrl`` (absolute or ``urn:uuid:``, FHIR R4 §2.36.4 resolving references
  in Bundles) or by ``Endpoint/{id}``; servers that ignore ``_include`` simply
  send none, and
* a separate ``GET Endpoint/{id}`` read on the launch's FHIR server
  (:class:`EndpointReader`: cached per server and id, at most
  ``max_reads`` per list, through the guarded FHIR client, so the token never
  leaves the origin of ``iss``). An absolute reference to another server is
  not read.

``connectionType``: R4/R4B a Coding, R5 a list of CodeableConcept; systems
``http://terminology.hl7.org/CodeSystem/endpoint-connection-type`` (R4+) and
``http://hl7.org/fhir/endpoint-connection-type`` (STU3), or no system at all.
Codes used: ``ihe-iid`` (IHE Invoke Image Display, the study's viewer) and
``dicom-wado-rs`` (the DICOMweb base, DICOM PS3.18 §10.4). Endpoints with
``status`` ``off``, ``error``, ``suspended`` or ``entered-in-error`` are ignored.
DSTU2 has no Endpoint: its ``ImagingStudy.url`` is the WADO-RS URL of the
study (``{base}/studies/{uid}``), whose base is kept as the DICOMweb base.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable
from urllib.parse import urljoin, urlsplit

from ..outbound import OutboundError
from ..urls import base_dir, origin_string, same_origin
from .errors import FhirError

log = logging.getLogger(__name__)

CONNECTION_TYPE_SYSTEMS = frozenset({
    "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",  # R4, R4B, R5
    "http://hl7.org/fhir/endpoint-connection-type",  # STU3
})
IHE_IID = "ihe-iid"
DICOM_WADO_RS = "dicom-wado-rs"
UNUSABLE_STATUSES = frozenset({"off", "error", "suspended", "entered-in-error"})
MAX_REFERENCES = 16
MAX_ADDRESS = 2048
INCLUDE_SEARCH = "ImagingStudy:endpoint"


@dataclass(frozen=True)
class EndpointFacts:
    """One usable Endpoint: ``connection_types`` (codes, e.g. ``("dicom-wado-rs",)``) and ``address`` (absolute
    http(s) URL, no trailing slash)."""

    connection_types: tuple[str, ...]
    address: str


@dataclass(frozen=True)
class StudyEndpoints:
    """The resolved services of one study: ``iid_address`` (an ``ihe-iid`` Endpoint's address, unfiltered),
    ``dicomweb_base`` (a ``dicom-wado-rs`` address, or the DSTU2 ``url`` minus ``/studies/{uid}``)."""

    iid_address: str | None = None
    dicomweb_base: str | None = None


def _dicts(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _address(value: Any) -> str | None:
    """An absolute http(s) URL without query or fragment (trailing slash removed), else ``None``."""
    if not isinstance(value, str) or not value or len(value) > MAX_ADDRESS or not value.isprintable():
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        return None
    try:
        origin_string(value)
    except ValueError:
        return None
    return value.rstrip("/")


def connection_types(resource: dict) -> tuple[str, ...]:
    """The connection type codes of an Endpoint: an R4 Coding, an R5 list of CodeableConcept, or a list of
    Codings; only codes in :data:`CONNECTION_TYPE_SYSTEMS` or without a system."""
    value = resource.get("connectionType")
    items = value if isinstance(value, list) else [value]
    codings: list[dict] = []
    for item in items:
        if isinstance(item, dict):
            codings.extend(_dicts(item.get("coding")) if "coding" in item else [item])
    return tuple(dict.fromkeys(c["code"] for c in codings if isinstance(c.get("code"), str)
                               and c.get("system", None) in CONNECTION_TYPE_SYSTEMS | {None}))


def endpoint_facts(resource: Any) -> EndpointFacts | None:
    """:class:`EndpointFacts` of an Endpoint resource (dict), or ``None`` (not an Endpoint, unusable status,
    no usable address or connection type). Never raises on odd data."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Endpoint":
        return None
    if resource.get("status") in UNUSABLE_STATUSES:
        return None
    address, types = _address(resource.get("address")), connection_types(resource)
    return EndpointFacts(types, address) if address and types else None


def endpoint_references(resource: dict) -> tuple[str, ...]:
    """``ImagingStudy.endpoint[].reference`` then each ``series[].endpoint[].reference``, de-duplicated, at most
    :data:`MAX_REFERENCES`."""
    refs = [r.get("reference") for r in _dicts(resource.get("endpoint"))]
    for series in _dicts(resource.get("series")):
        refs.extend(r.get("reference") for r in _dicts(series.get("endpoint")))
    return tuple(dict.fromkeys(r for r in refs if isinstance(r, str) and 0 < len(r) <= MAX_ADDRESS))[:MAX_REFERENCES]


def dstu2_dicomweb_base(resource: dict, study_uid: str | None) -> str | None:
    """DSTU2 ``ImagingStudy.url`` (the study's WADO-RS URL ``{base}/studies/{uid}``) → ``{base}``, else ``None``."""
    url = _address(resource.get("url"))
    if url is None or not study_uid:
        return None
    suffix = f"/studies/{study_uid}"
    return url[:-len(suffix)] or None if url.endswith(suffix) else None


def _merge(found: StudyEndpoints, facts: EndpointFacts | None) -> StudyEndpoints:
    if facts is None:
        return found
    if IHE_IID in facts.connection_types and found.iid_address is None:
        found = replace(found, iid_address=facts.address)
    if DICOM_WADO_RS in facts.connection_types and found.dicomweb_base is None:
        found = replace(found, dicomweb_base=facts.address)
    return found


def resolve_contained(resource: dict, refs: Iterable[str]) -> tuple[StudyEndpoints, tuple[str, ...]]:
    """``(endpoints, pending)``: the ``#id`` references resolved from ``resource.contained``; the other
    references are ``pending`` (resolved later from the Bundle or by a read)."""
    contained = {c.get("id"): c for c in _dicts(resource.get("contained")) if isinstance(c.get("id"), str)}
    found, pending = StudyEndpoints(), []
    for ref in refs:
        if ref.startswith("#"):
            found = _merge(found, endpoint_facts(contained.get(ref[1:])))
        else:
            pending.append(ref)
    return found, tuple(pending)


class IncludedEndpoints:
    """Endpoint resources seen in search Bundles (``search.mode`` ``include``, or Endpoint entries without a mode),
    keyed by ``fullUrl`` and by ``Endpoint/{id}``; at most ``limit`` kept (thread-safe)."""

    def __init__(self, limit: int = 256):
        self._limit = limit
        self._by_key: dict[str, dict] = {}
        self._lock = threading.Lock()

    def add(self, entry: dict) -> None:
        """Keep the Endpoint of a Bundle entry (a dict); anything else is ignored."""
        resource = entry.get("resource")
        if not isinstance(resource, dict) or resource.get("resourceType") != "Endpoint":
            return
        keys = [k for k in (entry.get("fullUrl"),) if isinstance(k, str) and k]
        if isinstance(resource.get("id"), str):
            keys.append(f"Endpoint/{resource['id']}")
        with self._lock:
            for key in keys:
                if len(self._by_key) < self._limit or key in self._by_key:
                    self._by_key[key] = resource

    def find(self, reference: str, fhir_base_url: str) -> dict | None:
        """The included Endpoint ``reference`` names: by ``fullUrl`` (absolute or ``urn:uuid:``), by the
        reference resolved against ``fhir_base_url``, or by ``Endpoint/{id}`` for a reference on that base."""
        with self._lock:
            if reference in self._by_key:
                return self._by_key[reference]
            absolute = urljoin(base_dir(fhir_base_url), reference)
            if absolute in self._by_key:
                return self._by_key[absolute]
            relative = _relative_endpoint(reference, fhir_base_url)
            return self._by_key.get(relative) if relative else None

    def __len__(self) -> int:
        return len(self._by_key)


def _relative_endpoint(reference: str, fhir_base_url: str) -> str | None:
    """``Endpoint/{id}`` for a relative reference or an absolute one under ``fhir_base_url``, else ``None``."""
    if reference.startswith(base_dir(fhir_base_url)):
        reference = reference[len(base_dir(fhir_base_url)):]
    parts = reference.split("/")
    if len(parts) in (2, 4) and parts[0] == "Endpoint" and parts[1] and (len(parts) == 2 or parts[2] == "_history"):
        return f"Endpoint/{parts[1]}"
    return None


class EndpointReader:
    """``Endpoint/{id}`` reads cached per FHIR server and id for ``ttl_seconds`` (failures too, shorter), at most
    ``max_entries`` kept (least recently used dropped). One per process; thread-safe.

    ``read(fhir_base_url, endpoint_id, fetch)``: ``fetch(id)`` performs the read (a dict, or raises
    :mod:`app.fhir.errors` / transport facts) and is called only on a miss.
    """

    def __init__(self, ttl_seconds: float = 300.0, failure_ttl_seconds: float = 30.0, max_entries: int = 1024):
        self._ttl, self._failure_ttl, self._max = ttl_seconds, failure_ttl_seconds, max_entries
        self._cache: OrderedDict[tuple[str, str], tuple[float, EndpointFacts | None]] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, fhir_base_url: str, endpoint_id: str, fetch: Callable[[str], dict]) -> EndpointFacts | None:
        """The facts of ``Endpoint/{endpoint_id}`` on ``fhir_base_url`` (``None``: unreadable or unusable)."""
        key = (base_dir(fhir_base_url), endpoint_id)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] > now:
                self._cache.move_to_end(key)
                return hit[1]
        try:
            facts, ttl = endpoint_facts(fetch(endpoint_id)), self._ttl
        except (FhirError, OutboundError, ValueError) as exc:
            log.info("Endpoint read failed: %s", type(exc).__name__)
            facts, ttl = None, self._failure_ttl
        with self._lock:
            self._cache[key] = (now + ttl, facts)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return facts


def resolve_pending(refs: Iterable[str], found: StudyEndpoints, *, included: IncludedEndpoints | None,
                    fhir_base_url: str, read: Callable[[str], EndpointFacts | None] | None) -> StudyEndpoints:
    """Resolve the references :func:`resolve_contained` left pending: from ``included``, else (a reference on
    ``fhir_base_url``) with ``read(endpoint_id)``; ``urn:uuid:`` references not in the Bundle and references to
    other servers stay unresolved."""
    for ref in refs:
        if found.iid_address and found.dicomweb_base:
            break
        resource = included.find(ref, fhir_base_url) if included is not None else None
        if resource is not None:
            found = _merge(found, endpoint_facts(resource))
            continue
        relative = _relative_endpoint(ref, fhir_base_url)
        if relative and read is not None and (not ref.startswith(("http:", "https:"))
                                              or same_origin(ref, fhir_base_url)):
            found = _merge(found, read(relative.split("/", 1)[1]))
    return found


def allowed_viewer(iid_address: str | None, viewer_origins: Iterable[str]) -> str | None:
    """``iid_address`` when its origin is one of ``viewer_origins`` (``scheme://host[:port]``), else ``None``
    (the configured viewer is used)."""
    if not iid_address:
        return None
    try:
        return iid_address if origin_string(iid_address) in set(viewer_origins) else None
    except ValueError:
        return None
