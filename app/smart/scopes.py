"""SMART scope strings: what to ask for and whether what was granted is enough.

SMART App Launch 2.2 §Scopes and Launch Context: v2 clinical scopes are
``(patient|user|system)/(Type|*).[c][r][u][d][s]`` with an optional
``?param=value`` restriction; v1 scopes are ``(patient|user)/(Type|*).(read|write|*)``.
"""

from __future__ import annotations

import re

_CLINICAL_SCOPE = re.compile(
    r"^(?P<context>patient|user|system)/(?P<type>[A-Za-z]+|\*)\.(?P<perm>[^?\s]+)(?:\?\S*)?$")
_V2_PERMISSIONS = re.compile(r"^c?r?u?d?s?$")

EHR_LAUNCH_SCOPES = ("launch",)
STANDALONE_LAUNCH_SCOPES = ("launch/patient",)
IDENTITY_SCOPES = ("openid", "fhirUser")  # SMART 2.2 §Scopes for requesting identity data


def resource_scopes(v2: bool) -> tuple[str, ...]:
    """The read/search scopes for ImagingStudy, Patient and DiagnosticReport (the studies' reports), in one syntax.

    v2: ``patient/ImagingStudy.rs patient/Patient.rs patient/DiagnosticReport.rs``; v1: the same with ``.read``.
    """
    permission = "rs" if v2 else "read"
    return (f"patient/ImagingStudy.{permission}", f"patient/Patient.{permission}",
            f"patient/DiagnosticReport.{permission}")


def requested_scope(*, ehr_launch: bool, v2: bool, extra: tuple[str, ...] = (), identity: bool = False) -> str:
    """Space-separated scope for the authorize request (launch context + resources + ``openid fhirUser`` when
    ``identity`` + extras, no duplicates)."""
    parts = (EHR_LAUNCH_SCOPES if ehr_launch else STANDALONE_LAUNCH_SCOPES) + resource_scopes(v2) \
        + (IDENTITY_SCOPES if identity else ()) + tuple(extra)
    return " ".join(dict.fromkeys(parts))


def allows_search(scope: str | None, resource_type: str) -> bool:
    """True when any scope in ``scope`` lets the app search ``resource_type``.

    Examples (SMART 2.2 and 1.0): ``patient/ImagingStudy.rs``, ``patient/*.read``,
    ``user/ImagingStudy.cruds`` allow it; ``patient/ImagingStudy.r`` (read, no
    search), ``patient/ImagingStudy.c``, ``patient/Patient.read`` and ``launch`` do not.
    """
    for token in (scope or "").split():
        match = _CLINICAL_SCOPE.match(token)
        if not match or match["context"] not in ("patient", "user"):
            continue
        if match["type"] not in (resource_type, "*"):
            continue
        permission = match["perm"]
        if permission in ("read", "*"):
            return True
        if permission and _V2_PERMISSIONS.match(permission) and "s" in permission:
            return True
    return False


def granted(scope: str | None, name: str) -> bool:
    """True when the space-separated ``scope`` contains ``name`` exactly (e.g. ``openid``)."""
    return name in (scope or "").split()


def allows_read(scope: str | None, resource_type: str) -> bool:
    """True when a ``patient/`` or ``user/`` scope lets the app read ``resource_type`` (``.r``, ``.rs``, ``.read``, ``*``)."""
    for token in (scope or "").split():
        match = _CLINICAL_SCOPE.match(token)
        if not match or match["context"] not in ("patient", "user") or match["type"] not in (resource_type, "*"):
            continue
        permission = match["perm"]
        if permission in ("read", "*") or (permission and _V2_PERMISSIONS.match(permission) and "r" in permission):
            return True
    return False
