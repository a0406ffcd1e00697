"""What a FHIR server says it offers: ``GET [base]/metadata`` read defensively, cached per ``iss``.

The capabilities interaction (FHIR R4 §3.1.0.13; the same URL in every version) answers a
``CapabilityStatement`` (STU3, R4, R4B, R5) or a ``Conformance`` (DSTU1, DSTU2). In all of them
``rest[]`` has ``mode`` (``server`` / ``client``) and ``resource[]`` entries with ``type`` (a resource
type code) and the interactions offered on that type: ``interaction[].code`` (DSTU2 and later), or
``operation[].code`` (DSTU1). A type is searchable when the code ``search-type`` is among them.

:func:`read_capabilities` gives :class:`ServerCapabilities` or ``None`` when the answer cannot tell
(not one of those resources, no ``rest`` entry with ``mode`` ``server``, wrong types). A server-mode
``rest`` whose ``resource`` list is absent declares no type (FHIR R4 CapabilityStatement.rest.resource:
"A specification of the restful capabilities of the solution for a specific resource type").

:class:`CapabilityCache` reads ``metadata`` through the guarded outbound client under the ``fhir`` policy
(origin of ``iss`` only, no redirects, the policy's byte cap and deadline) *without* the launch's token:
the capabilities interaction is not patient data, and an answer shared by every launch of that ``iss`` must
not depend on one launch's authorization. Answers are kept per ``iss`` for ``ttl_seconds`` (failures for
``failure_ttl_seconds``), at most ``max_entries`` servers. Per process (each instance asks once per TTL).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

from ..outbound import OutboundClient, OutboundError
from ..outbound.jsonsafe import decode_json
from ..urls import base_dir, origin_of

log = logging.getLogger(__name__)

STATEMENT_TYPES = frozenset({"CapabilityStatement", "Conformance"})
SEARCH_TYPE = "search-type"
METADATA_ACCEPT = "application/fhir+json, application/json+fhir;q=0.9, application/json;q=0.8"
METADATA_DEADLINE_SECONDS = 10.0  # tighter than a search page's: the list never waits on it for long
JSON_TYPES = frozenset({"application/fhir+json", "application/json+fhir", "application/json"})


@dataclass(frozen=True)
class ServerCapabilities:
    """What a server's ``rest[mode=server]`` entries declare: ``searchable``, the resource types with a
    ``search-type`` interaction; ``fhir_version``, the statement's ``fhirVersion`` (``None`` when absent)."""

    searchable: frozenset[str]
    fhir_version: str | None = None

    def offers_search(self, resource_type: str) -> bool:
        """The server declares the ``search-type`` interaction for ``resource_type``."""
        return resource_type in self.searchable


def _dicts(value: Any) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def read_capabilities(statement: Any) -> ServerCapabilities | None:
    """:class:`ServerCapabilities` of a decoded ``CapabilityStatement`` / ``Conformance`` (module doc), or
    ``None`` when it cannot tell what the server offers."""
    if not isinstance(statement, dict) or statement.get("resourceType") not in STATEMENT_TYPES:
        return None
    servers = [rest for rest in _dicts(statement.get("rest")) if rest.get("mode") == "server"]
    if not servers:
        return None
    searchable: set[str] = set()
    for rest in servers:
        for resource in _dicts(rest.get("resource")):
            kind = resource.get("type")
            codes = {i.get("code") for i in _dicts(resource.get("interaction")) + _dicts(resource.get("operation"))}
            if isinstance(kind, str) and SEARCH_TYPE in codes:
                searchable.add(kind)
    version = statement.get("fhirVersion")
    return ServerCapabilities(frozenset(searchable), version[:32] if isinstance(version, str) else None)


def fetch_capabilities(iss: str, outbound: OutboundClient) -> ServerCapabilities | None:
    """``GET {iss}/metadata`` (no token; module doc) read with :func:`read_capabilities`; ``None`` for any
    failure (status ≥ 300, not JSON, too large, too slow, unreadable). Never raises."""
    url = base_dir(iss) + "metadata"
    try:
        response = outbound.get(url, policy=outbound.policy("fhir", origin_of(iss), deadline_seconds=METADATA_DEADLINE_SECONDS),
                                headers={"Accept": METADATA_ACCEPT})
        if response.status != 200 or (response.media_type or "").lower() not in JSON_TYPES:
            log.info("capabilities unreadable: HTTP %s %s", response.status, (response.media_type or "")[:60])
            return None
        return read_capabilities(decode_json(response.content, kind="fhir", origin=response.origin,
                                             status=response.status))
    except (OutboundError, ValueError) as exc:
        log.info("capabilities unreadable: %s", type(exc).__name__)
        return None


class CapabilityCache:
    """:func:`fetch_capabilities` answers per ``iss`` (module doc); thread-safe, one per process. Concurrent
    lookups of one ``iss`` share one request."""

    def __init__(self, ttl_seconds: float = 3600.0, failure_ttl_seconds: float = 60.0, max_entries: int = 64):
        self.ttl_seconds, self.failure_ttl_seconds, self.max_entries = ttl_seconds, failure_ttl_seconds, max_entries
        self._items: OrderedDict[str, tuple[float, ServerCapabilities | None]] = OrderedDict()
        self._pending: dict[str, Future] = {}
        self._lock = threading.RLock()

    def cached(self, iss: str) -> tuple[bool, ServerCapabilities | None]:
        """``(hit, capabilities)`` without any request; a hit may be ``None`` (a failure, remembered briefly)."""
        with self._lock:
            item = self._items.get(iss)
            if item is None or item[0] <= time.monotonic():
                return False, None
            self._items.move_to_end(iss)
            return True, item[1]

    def lookup(self, iss: str, outbound: OutboundClient, executor: Executor) -> "Future[ServerCapabilities | None]":
        """A future of the answer for ``iss``: done at once on a cache hit, else the request already in flight
        for ``iss`` or a new one on ``executor`` (:func:`fetch_capabilities`; kept when it ends). Its result
        never raises."""
        with self._lock:
            hit, capabilities = self.cached(iss)
            if hit:
                done: Future = Future()
                done.set_result(capabilities)
                return done
            pending = self._pending.get(iss)
            if pending is not None:
                return pending
            try:
                future = executor.submit(self._fetch_and_keep, iss, outbound)
            except RuntimeError:  # the executor is shutting down: no answer, the search decides
                future = Future()
                future.set_result(None)
                return future
            if not future.done():
                self._pending[iss] = future
            return future

    def get(self, iss: str, outbound: OutboundClient) -> ServerCapabilities | None:
        """The cached answer for ``iss``, else :func:`fetch_capabilities` in this thread (then kept). Never raises."""
        hit, capabilities = self.cached(iss)
        return capabilities if hit else self._fetch_and_keep(iss, outbound)

    def _fetch_and_keep(self, iss: str, outbound: OutboundClient) -> ServerCapabilities | None:
        try:
            capabilities = fetch_capabilities(iss, outbound)
        except Exception:  # noqa: BLE001 - a lookup's result never raises
            log.exception("capabilities lookup failed")
            capabilities = None
        ttl = self.ttl_seconds if capabilities is not None else self.failure_ttl_seconds
        with self._lock:
            self._pending.pop(iss, None)
            self._items[iss] = (time.monotonic() + ttl, capabilities)
            self._items.move_to_end(iss)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return capabilities
