"""The per-app singletons the views use, kept in ``app.extensions["imaging_app"]``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from flask import current_app

from ..config import Settings
from ..outbound import OutboundClient
from ..launches.store import LaunchStore
from ..smart.discovery import SmartDiscovery

EXTENSION_KEY = "imaging_app"


@dataclass
class Services:
    """``settings`` (the registration), ``outbound`` (the one way out), ``discovery`` (cached per ``iss``),
    ``store`` (launches), ``executor`` (concurrent FHIR reads of one request)."""

    settings: Settings
    outbound: OutboundClient
    discovery: SmartDiscovery
    store: LaunchStore
    executor: ThreadPoolExecutor


def services() -> Services:
    """The current app's services."""
    return current_app.extensions[EXTENSION_KEY]
