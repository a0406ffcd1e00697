"""EHR launch contexts and simulated faults.

SMART App Launch 2.2 §EHR Launch: the EHR opens ``<launch_url>?iss=...&launch=...``;
the opaque ``launch`` value is later sent back in the authorization request and
bound to the EHR session context (patient, study, banner, faults).

A launch id is single use and expires after ``LAUNCH_LIFETIME`` seconds.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping
from urllib.parse import urlencode

from . import clock


class LaunchError(ValueError):
    """Launch id missing, unknown, expired or already used (OAuth ``invalid_request``)."""


class LaunchRequestError(ValueError):
    """Bad input when creating a launch (unknown patient/study, bad fault value)."""


@dataclass(frozen=True)
class Faults:
    """Simulated failures bound to one launch (and every token issued from it).

    deny: authorize answers ``access_denied``. narrow_scope: granted scope lacks
    ImagingStudy. no_patient: token response without ``patient`` and a token
    with no patient compartment. expired_token: the code-grant token has ``expires_in: 0``
    (FHIR answers 401; a refreshed token works). refresh_fails: refresh grant answers ``invalid_grant``. delay_ms: extra
    delay in milliseconds on FHIR responses for this launch's tokens.
    """

    deny: bool = False
    narrow_scope: bool = False
    no_patient: bool = False
    expired_token: bool = False
    refresh_fails: bool = False
    delay_ms: int = 0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "Faults":
        """Build from a JSON object; raises :class:`LaunchRequestError` on unknown keys or bad types."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise LaunchRequestError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name in known - {"delay_ms"}:
            if name in data:
                if not isinstance(data[name], bool):
                    raise LaunchRequestError(f"fault {name} must be a boolean")
                values[name] = data[name]
        if "delay_ms" in data:
            delay = data["delay_ms"]
            if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= 60000:
                raise LaunchRequestError("fault delay_ms must be an integer 0..60000")
            values["delay_ms"] = delay
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict of all faults."""
        return asdict(self)


@dataclass(frozen=True)
class LaunchContext:
    """What the EHR binds to a launch (or to a standalone patient pick).

    ``patient``: FHIR Patient id; ``study``: ImagingStudy id or None;
    ``need_patient_banner``: SMART ``need_patient_banner``; ``faults``: :class:`Faults`.
    """

    patient: str | None
    study: str | None = None
    need_patient_banner: bool = True
    faults: Faults = field(default_factory=Faults)


class LaunchStore:
    """Thread-safe in-memory store of pending EHR launches."""

    def __init__(self, lifetime_seconds: int):
        self._lifetime = lifetime_seconds
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[float, LaunchContext]] = {}
        self._used: set[str] = set()

    def create(self, context: LaunchContext) -> str:
        """Register *context*; return a fresh opaque launch id (``secrets.token_urlsafe``)."""
        launch = secrets.token_urlsafe(24)
        with self._lock:
            self._pending[launch] = (clock.now(), context)
        return launch

    def peek(self, launch: str | None) -> LaunchContext:
        """Return the context of a pending, unexpired launch without consuming it.

        Raises :class:`LaunchError` (missing / reused / unknown / expired).
        """
        if not launch:
            raise LaunchError("missing 'launch' parameter for an EHR launch")
        with self._lock:
            if launch in self._used:
                raise LaunchError("this launch has already been used; launch the app again from the EHR")
            entry = self._pending.get(launch)
            if entry is None:
                raise LaunchError("unknown launch")
            created, context = entry
            if clock.now() - created > self._lifetime:
                raise LaunchError("launch has expired; launch the app again from the EHR")
            return context

    def consume(self, launch: str) -> LaunchContext:
        """Like :meth:`peek` but marks the launch used (single use)."""
        context = self.peek(launch)
        with self._lock:
            if launch in self._used:
                raise LaunchError("this launch has already been used; launch the app again from the EHR")
            self._pending.pop(launch, None)
            self._used.add(launch)
        return context


def build_launch_url(app_launch_url: str, iss: str, launch: str) -> str:
    """``<app_launch_url>?iss=<iss>&launch=<launch>`` built with ``urlencode`` (SMART 2.2 §EHR Launch)."""
    separator = "&" if "?" in app_launch_url else "?"
    return app_launch_url + separator + urlencode({"iss": iss, "launch": launch})
