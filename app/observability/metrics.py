"""Prometheus metrics (prometheus-client), served at ``GET /metrics`` to allowlisted client addresses only.

Metrics (all names prefixed ``imaging_``):

``imaging_launches_total{outcome}``                 callbacks by outcome: ``success`` or the fact's class name
``imaging_upstream_request_seconds{kind}``          histogram of outbound exchanges by kind (``fhir``, ``token``,
                                                    ``discovery``, ``jwks``, ``audit``)
``imaging_upstream_requests_total{kind,outcome}``   outbound exchanges by kind and HTTP status / failure class
``imaging_study_list_studies``                      histogram of studies per fetched list
``imaging_errors_total{class}``                     error pages by the failure's class name
``imaging_http_requests_total{route,status}``       requests by route template (no ids) and status

Multi-process mode (gunicorn workers): when ``PROMETHEUS_MULTIPROC_DIR`` names
a writable directory (set before the app is imported; emptied at each start),
every worker writes its samples there and ``/metrics`` aggregates them with
``MultiProcessCollector``; gunicorn's ``child_exit`` hook should call
``prometheus_client.multiprocess.mark_process_dead(worker.pid)``.
"""

from __future__ import annotations

import ipaddress
import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import REGISTRY

LAUNCHES = Counter("imaging_launches", "SMART launch callbacks by outcome.", ["outcome"])
UPSTREAM_SECONDS = Histogram("imaging_upstream_request_seconds", "Outbound exchanges by kind (seconds).", ["kind"],
                             buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
UPSTREAM_REQUESTS = Counter("imaging_upstream_requests", "Outbound exchanges by kind and outcome.",
                            ["kind", "outcome"])
STUDIES_PER_LIST = Histogram("imaging_study_list_studies", "Studies per fetched study list.",
                             buckets=(0, 1, 5, 10, 25, 50, 100, 200, 500, 1000, 5000, 10000))
ERRORS = Counter("imaging_errors", "Error pages by failure class.", ["class"])
HTTP_REQUESTS = Counter("imaging_http_requests", "Requests by route template and status.", ["route", "status"])


def observe_upstream(kind: str, seconds: float, outcome: str) -> None:
    """An :data:`app.outbound.observe.OBSERVERS` callback."""
    UPSTREAM_SECONDS.labels(kind).observe(seconds)
    UPSTREAM_REQUESTS.labels(kind, outcome).inc()


def exposition() -> tuple[bytes, str]:
    """``(body, content_type)`` of the text exposition format; aggregated over workers in multi-process mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class AddressAllowlist:
    """Client networks allowed to read metrics (CIDR strings, e.g. ``127.0.0.1/32``). Raises ``ValueError`` for a
    malformed network."""

    def __init__(self, networks: tuple[str, ...]):
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def allows(self, address: str | None) -> bool:
        """True when ``address`` (``request.remote_addr``) is in one of the networks."""
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in self.networks)
