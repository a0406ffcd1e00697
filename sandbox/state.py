"""Per-application sandbox state, stored in ``app.extensions["sandbox"]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:  # pragma: no cover
    from .authorize import PendingAuthorizations
    from .dataset import Dataset
    from .launches import LaunchStore
    from .oauth import SmartAuthorizationServer


@dataclass
class SandboxState:
    """Everything the blueprints share: config, data, launches, OAuth server, pending standalone requests."""

    config: dict[str, Any]
    dataset: "Dataset"
    launches: "LaunchStore"
    oauth: "SmartAuthorizationServer"
    pending: "PendingAuthorizations"

    @property
    def fhir_base_url(self) -> str:
        """The ``iss``: ``PUBLIC_BASE_URL + "/fhir"``."""
        return self.config["PUBLIC_BASE_URL"] + "/fhir"

    @property
    def iid_base_url(self) -> str:
        """Absolute URL of the IID display (``/IHEInvokeImageDisplay``)."""
        return self.config["PUBLIC_BASE_URL"] + "/IHEInvokeImageDisplay"


def get_state() -> SandboxState:
    """The :class:`SandboxState` of the current Flask app."""
    return current_app.extensions["sandbox"]
