"""The token response reduced to what the app keeps: :class:`TokenGrant` (SMART App Launch 2.2 §Response to token request)."""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import InvalidTokenResponse, NoPatientContext

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # FHIR R4 §2.24.0.1 id datatype (used with fullmatch)
ACCESS_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 §2.1 b64token (used with fullmatch)
MAX_TOKEN_LENGTH = 16384
MAX_CONTEXT_ITEMS = 20
MAX_INTENT_LENGTH = 200
TENANT = re.compile(r"[A-Za-z0-9._\-]{1,64}")
REFERENCE = re.compile(r"(?P<type>[A-Z][A-Za-z]{1,63})/(?P<id>[A-Za-z0-9\-.]{1,64})")  # relative literal reference


def is_fhir_id(value: Any) -> bool:
    """True when ``value`` is a string matching the FHIR ``id`` grammar in full (no ``.``/``..`` path segments)."""
    return isinstance(value, str) and value not in (".", "..") and FHIR_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class ContextReference:
    """One ``fhirContext`` item (SMART App Launch 2.2 §fhirContext): ``resource_type`` and ``id`` of a relative
    reference, ``role`` (a URI) when given. E.g. ``ContextReference("DiagnosticReport", "dr-1")``."""

    resource_type: str
    id: str
    role: str | None = None

    @property
    def reference(self) -> str:
        """``Type/id``."""
        return f"{self.resource_type}/{self.id}"

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"resource_type": self.resource_type, "id": self.id, "role": self.role}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ContextReference":
        """Inverse of :meth:`to_json`."""
        return cls(data["resource_type"], data["id"], data.get("role"))


@dataclass(frozen=True)
class TokenGrant:
    """What the app keeps of a token response (contains the tokens: never log or render it).

    ``expires_at``: epoch seconds, or ``None`` when the server gave no ``expires_in``.
    ``scope``: as granted (the requested scope when the server omits it, RFC 6749 §5.1).
    ``preselected_study_id``: the ImagingStudy id from an ``fhirContext`` reference, if any.
    ``lifetime_seconds``: the ``expires_in`` granted (``None``: unknown), for the renewal margin.
    ``encounter``: the ``encounter`` context (a FHIR id); ``fhir_context``: the ``fhirContext`` references
    (at most 20, relative ``Type/id`` only); ``intent`` (at most 200 printable characters) and ``tenant``
    (1–64 of ``A-Za-z0-9._-``): SMART 2.2 §Launch context arrives with the access token.
    ``id_token``: the raw OpenID Connect id_token of this response, for validation only: never stored
    (:meth:`to_json` drops it) nor carried over a refresh.
    """

    access_token: str
    scope: str
    expires_at: float | None
    refresh_token: str | None = None
    patient: str | None = None
    need_patient_banner: bool = True
    smart_style_url: str | None = None
    preselected_study_id: str | None = None
    lifetime_seconds: float | None = None
    encounter: str | None = None
    fhir_context: tuple[ContextReference, ...] = ()
    intent: str | None = None
    tenant: str | None = None
    id_token: str | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """JSON-able form for the launch store (without ``id_token``)."""
        data = asdict(self)
        data.pop("id_token")
        data["fhir_context"] = [item.to_json() for item in self.fhir_context]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TokenGrant":
        """Inverse of :meth:`to_json`."""
        data = {k: v for k, v in data.items() if k != "id_token"}
        data["fhir_context"] = tuple(ContextReference.from_json(item) for item in data.get("fhir_context") or ())
        return cls(**data)

    def context_references(self, *resource_types: str) -> tuple[ContextReference, ...]:
        """The ``fhirContext`` references of these types (all when none given), in the server's order."""
        return tuple(r for r in self.fhir_context if not resource_types or r.resource_type in resource_types)

    def renewed(self, newer: "TokenGrant") -> "TokenGrant":
        """This grant after a refresh answered ``newer``: new tokens and scope, launch context carried over.

        SMART 2.2 §Refresh access token: a new refresh token replaces the old one when the server rotates it.
        """
        return TokenGrant(
            access_token=newer.access_token, scope=newer.scope, expires_at=newer.expires_at,
            refresh_token=newer.refresh_token or self.refresh_token, patient=newer.patient or self.patient,
            need_patient_banner=self.need_patient_banner, smart_style_url=self.smart_style_url,
            preselected_study_id=self.preselected_study_id, lifetime_seconds=newer.lifetime_seconds,
            encounter=self.encounter or newer.encounter, fhir_context=self.fhir_context or newer.fhir_context,
            intent=self.intent or newer.intent, tenant=self.tenant or newer.tenant)


def _expires_at(value: Any, now: float) -> float | None:
    """``now + expires_in`` for a finite, non-negative number (or numeric string); anything else ``None``.

    ``None`` means "lifetime unknown": the token is used until the FHIR server answers 401.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return now + seconds if math.isfinite(seconds) and 0 <= seconds <= 10 * 365 * 86400 else None


def _lifetime(value: Any) -> float | None:
    """``expires_in`` as seconds when usable (see :func:`_expires_at`), else ``None``."""
    expires_at = _expires_at(value, 0.0)
    return expires_at


def _context_references(fhir_context: Any) -> tuple[ContextReference, ...]:
    """The usable items of ``fhirContext``: ``{"reference": "Type/id", "role"?: uri}`` or, as some servers send,
    a bare ``"Type/id"`` string; absolute, contained or malformed references and duplicates are skipped."""
    if not isinstance(fhir_context, list):
        return ()
    found: dict[str, ContextReference] = {}
    for item in fhir_context[:100]:
        reference = item.get("reference") if isinstance(item, dict) else item
        role = item.get("role") if isinstance(item, dict) else None
        match = REFERENCE.fullmatch(reference) if isinstance(reference, str) else None
        if match is None or not is_fhir_id(match["id"]) or match.group(0) in found:
            continue
        role = role if isinstance(role, str) and 0 < len(role) <= 512 and role.isprintable() else None
        found[match.group(0)] = ContextReference(match["type"], match["id"], role)
        if len(found) == MAX_CONTEXT_ITEMS:
            break
    return tuple(found.values())


def _bounded_text(value: Any, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit and value.isprintable() else None


def _preselected_study(fhir_context: Any) -> str | None:
    if not isinstance(fhir_context, list):
        return None
    for item in fhir_context:
        reference = item.get("reference") if isinstance(item, dict) else item
        if isinstance(reference, str) and reference.startswith("ImagingStudy/"):
            study_id = reference.split("/", 1)[1]
            if is_fhir_id(study_id):
                return study_id
    return None


def parse_token_response(raw: Any, *, requested: str, now: float | None = None,
                         require_patient: bool = True, during: str = "code exchange") -> TokenGrant:
    """Validate a token response (a decoded JSON object) and extract launch context.

    Requires ``access_token`` (RFC 6750 §2.1 characters only, at most 16 KiB)
    and ``token_type`` Bearer (case-insensitive); ``expires_in`` may be a number
    or a numeric string, finite and non-negative (else the lifetime is unknown); ``patient`` must match the FHIR
    id grammar in full. Raises :class:`InvalidTokenResponse` naming the field,
    :class:`NoPatientContext` when ``patient`` is absent and ``require_patient``.
    """
    now = time.time() if now is None else now
    if not isinstance(raw, dict):
        raise InvalidTokenResponse("the answer is not a JSON object", during)
    access_token = raw.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise InvalidTokenResponse("no access_token", during)
    if len(access_token) > MAX_TOKEN_LENGTH or not ACCESS_TOKEN.fullmatch(access_token):
        raise InvalidTokenResponse("the access_token contains characters a bearer token cannot have", during)
    token_type = raw.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise InvalidTokenResponse("token_type is not Bearer", during)
    patient = raw.get("patient")
    if patient is None or patient == "":
        patient = None
    elif not is_fhir_id(patient):
        raise InvalidTokenResponse("patient is not a valid FHIR id", during)
    if require_patient and patient is None:
        raise NoPatientContext()
    scope = raw.get("scope")
    banner = raw.get("need_patient_banner")
    style = raw.get("smart_style_url")
    refresh_token = raw.get("refresh_token")
    if refresh_token is not None and not (isinstance(refresh_token, str) and len(refresh_token) <= MAX_TOKEN_LENGTH
                                          and refresh_token.isprintable()):
        raise InvalidTokenResponse("refresh_token is not a printable string", during)
    return TokenGrant(
        access_token=access_token,
        scope=scope if isinstance(scope, str) and scope.strip() else requested,
        expires_at=_expires_at(raw.get("expires_in"), now),
        refresh_token=refresh_token or None,
        patient=patient,
        need_patient_banner=banner if isinstance(banner, bool) else True,
        smart_style_url=style if isinstance(style, str) and style.startswith(("https://", "http://")) else None,
        preselected_study_id=_preselected_study(raw.get("fhirContext")),
        lifetime_seconds=_lifetime(raw.get("expires_in")),
        encounter=raw["encounter"] if is_fhir_id(raw.get("encounter")) else None,
        fhir_context=_context_references(raw.get("fhirContext")),
        intent=_bounded_text(raw.get("intent"), MAX_INTENT_LENGTH),
        tenant=raw["tenant"] if isinstance(raw.get("tenant"), str) and TENANT.fullmatch(raw["tenant"]) else None,
        id_token=raw["id_token"] if isinstance(raw.get("id_token"), str) else None)
