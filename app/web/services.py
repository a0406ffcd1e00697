"""The per-app singletons the views use, kept in ``app.extensions["imaging_app"]``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from flask import current_app

from ..config import Settings
from ..outbound import OutboundClient
from ..launches.images import LaunchImages
from ..launches.bulkheads import EhrBulkheads
from ..launches.store import LaunchStore
from ..audit import AuditEventBuilder, AuditTrail
from ..smart.discovery import SmartDiscovery
from ..smart.jwks import JwksCache

EXTENSION_KEY = "imaging_app"


@dataclass
class Services:
    """``settings`` (the registration), ``outbound`` (the one way out), ``discovery`` (cached per ``iss``),
    ``store`` (launches), ``executor`` (concurrent FHIR reads of one request), ``jwks`` (id_token keys),
    ``audit`` / ``audit_events`` (the audit trail and its event builder), ``app_jwks`` (the app's public JWK Set
    for ``private_key_jwt``), ``images`` (DICOMweb access and thumbnails, :class:`~app.launches.images.LaunchImages`),
    ``bulkheads`` (how many lists one EHR may be fetching at once, :mod:`app.launches.bulkheads`),
    ``loaders`` (the background loaders of older ImagingStudy pages: a pool of their own, so that loaders held
    by a slow EHR never delay another request's concurrent reads on ``executor``; ``None``: ``executor``)."""

    settings: Settings
    outbound: OutboundClient
    discovery: SmartDiscovery
    store: LaunchStore
    executor: ThreadPoolExecutor
    jwks: JwksCache | None = None
    audit: AuditTrail = field(default_factory=lambda: AuditTrail([]))
    audit_events: AuditEventBuilder = field(default_factory=AuditEventBuilder)
    app_jwks: dict = field(default_factory=lambda: {"keys": []})
    images: LaunchImages | None = None
    bulkheads: EhrBulkheads | None = None
    loaders: ThreadPoolExecutor | None = None


def services() -> Services:
    """The current app's services."""
    return current_app.extensions[EXTENSION_KEY]
