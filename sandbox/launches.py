"""EHR launch contexts and simulated faults.

SMART App Launch 2.2 §EHR Launch: the EHR opens ``<launch_url>?iss=...&launch=...``;
the opaque ``launch`` value is later sent back in the authorization request and
bound to the EHR session context (patient, study, banner, faults).

A launch id is single use and expires after ``LAUNCH_LIFETIME`` seconds.
"""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping
from urllib.parse import urlencode

from . import clock
from .config import ID_TOKEN_FAULTS

#: ``iss`` sent by the ``wrong_iss`` fault and the id_token ``wrong-iss`` fault.
WRONG_ISSUER = "https://wrong-issuer.example.net"


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
    omit_iss: the authorization response lacks ``iss`` although discovery advertises
    RFC 9207 support. wrong_iss: ``iss`` is :data:`WRONG_ISSUER`. id_token: one of
    :data:`sandbox.config.ID_TOKEN_FAULTS` applied to the id_token of this launch's
    token responses (overrides the server-wide ``ID_TOKEN_FAULT``).
    """

    deny: bool = False
    narrow_scope: bool = False
    no_patient: bool = False
    expired_token: bool = False
    refresh_fails: bool = False
    delay_ms: int = 0
    omit_iss: bool = False
    wrong_iss: bool = False
    id_token: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "Faults":
        """Build from a JSON object; raises :class:`LaunchRequestError` on unknown keys or bad types."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise LaunchRequestError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name in known - {"delay_ms", "id_token"}:
            if name in data:
                if not isinstance(data[name], bool):
                    raise LaunchRequestError(f"fault {name} must be a boolean")
                values[name] = data[name]
        if "delay_ms" in data:
            delay = data["delay_ms"]
            if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= 60000:
                raise LaunchRequestError("fault delay_ms must be an integer 0..60000")
            values["delay_ms"] = delay
        if data.get("id_token") is not None:
            if data["id_token"] not in ID_TOKEN_FAULTS:
                raise LaunchRequestError(f"fault id_token must be null or one of {', '.join(ID_TOKEN_FAULTS)}")
            values["id_token"] = data["id_token"]
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict of all faults."""
        return asdict(self)


@dataclass(frozen=True)
class LaunchContext:
    """What the EHR binds to a launch (or to a standalone patient pick).

    ``patient``: FHIR Patient id; ``study``: ImagingStudy id or None;
    ``need_patient_banner``: SMART ``need_patient_banner``; ``faults``: :class:`Faults`.
    Extra launch options (:func:`parse_launch_options`): ``encounter`` (Encounter id),
    ``fhir_context`` (SMART 2.2 ``fhirContext`` objects beyond the study), ``intent``,
    ``tenant``, ``access_token_lifetime`` (seconds; None: client / server default).
    """

    patient: str | None
    study: str | None = None
    need_patient_banner: bool = True
    faults: Faults = field(default_factory=Faults)
    encounter: str | None = None
    fhir_context: tuple = ()
    intent: str | None = None
    tenant: str | None = None
    access_token_lifetime: int | None = None

    def fhir_context_items(self) -> list[dict]:
        """The token response's ``fhirContext``: the preselected study first, then the extra items."""
        items = [{"reference": f"ImagingStudy/{self.study}"}] if self.study else []
        for item in self.fhir_context:
            if item not in items:
                items.append(dict(item))
        return items


#: Launch options beyond patient / study / banner / faults (``POST /ehr/api/launches`` body keys).
LAUNCH_OPTION_KEYS = ("encounter", "fhir_context", "intent", "tenant", "access_token_lifetime")
#: fhirContext reference types accepted; ImagingStudy and Encounter must be the launch patient's.
FHIR_CONTEXT_TYPES = ("ImagingStudy", "Encounter", "DiagnosticReport", "ServiceRequest")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_TENANT = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
_ROLE = re.compile(r"^\S{1,200}$")


def encounter_id_for(patient_id: str) -> str:
    """The one Encounter the sandbox holds per patient: ``enc-<patient id>`` (e.g. ``enc-pt-1001``)."""
    return f"enc-{patient_id}"


def parse_launch_options(body: Mapping[str, Any], patient_id: str, study_ids: set[str]) -> dict[str, Any]:
    """Validate the extra launch options in *body* for *patient_id*; return LaunchContext kwargs.

    ``encounter``: ``true`` (the patient's encounter) or its id ``enc-<patient>``;
    ``fhir_context``: list of ``"Type/id"`` strings or ``{"reference": "Type/id", "role"?: uri}``
    (types :data:`FHIR_CONTEXT_TYPES`; an ImagingStudy must be one of *study_ids*, an
    Encounter the patient's); ``intent``: 1..200 characters; ``tenant``: 1..64 of
    ``A-Z a-z 0-9 . _ -``; ``access_token_lifetime``: 1..86400 s. Raises :class:`LaunchRequestError`.
    """
    result: dict[str, Any] = {}
    own_encounter = encounter_id_for(patient_id)
    encounter = body.get("encounter")
    if encounter is not None and encounter is not False:
        if encounter is True:
            encounter = own_encounter
        if encounter != own_encounter:
            raise LaunchRequestError(f"encounter must be true or {own_encounter!r} for patient {patient_id!r}")
        result["encounter"] = encounter
    items = body.get("fhir_context")
    if items is not None:
        if not isinstance(items, list):
            raise LaunchRequestError("fhir_context must be a list")
        parsed = []
        for item in items:
            item = {"reference": item} if isinstance(item, str) else item
            if not isinstance(item, dict) or set(item) - {"reference", "role"} or not isinstance(item.get("reference"), str):
                raise LaunchRequestError("fhir_context items must be 'Type/id' or {'reference': 'Type/id', 'role'?: uri}")
            if "role" in item and not (isinstance(item["role"], str) and _ROLE.match(item["role"])):
                raise LaunchRequestError("fhir_context role must be a non-empty string without spaces")
            rtype, _, rid = item["reference"].partition("/")
            if rtype not in FHIR_CONTEXT_TYPES or not _FHIR_ID.match(rid):
                raise LaunchRequestError(
                    f"fhir_context reference must be one of {', '.join(FHIR_CONTEXT_TYPES)}/<id>, got {item['reference']!r}"
                )
            if rtype == "ImagingStudy" and rid not in study_ids:
                raise LaunchRequestError(f"fhir_context {item['reference']!r} is not a study of patient {patient_id!r}")
            if rtype == "Encounter" and rid != own_encounter:
                raise LaunchRequestError(f"fhir_context {item['reference']!r} is not an encounter of patient {patient_id!r}")
            parsed.append(dict(item))
        result["fhir_context"] = tuple(parsed)
    for name, pattern, what in (("intent", re.compile(r"^[^\x00-\x1f]{1,200}$"), "1..200 characters"),
                                ("tenant", _TENANT, "1..64 of A-Z a-z 0-9 . _ -")):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, str) or not pattern.match(value):
                raise LaunchRequestError(f"{name} must be a string of {what}")
            result[name] = value
    lifetime = body.get("access_token_lifetime")
    if lifetime is not None:
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or not 1 <= lifetime <= 86400:
            raise LaunchRequestError("access_token_lifetime must be an integer 1..86400 (seconds)")
        result["access_token_lifetime"] = lifetime
    return result


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
