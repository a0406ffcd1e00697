"""SMART on FHIR scope grammar (v1 and v2) and permission checks.

SMART App Launch 2.2 §Scopes and Launch Context:

* v1 clinical scope: ``(patient|user)/(Type|*).(read|write|*)``
* v2 clinical scope: ``(patient|user)/(Type|*).[c][r][u][d][s]`` (letters in
  that order, at least one), optionally followed by ``?param=value&...``
  (accepted; the constraint is not applied by this sandbox).
* non-clinical scopes this EHR grants: :data:`NON_CLINICAL_SCOPES`.

``system/`` scopes belong to SMART Backend Services, not to the authorization
code flow, so they are refused here (``invalid_scope``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NON_CLINICAL_SCOPES = frozenset(
    {"launch", "launch/patient", "openid", "fhirUser", "offline_access", "online_access"}
)

_CLINICAL = re.compile(
    r"^(?P<level>patient|user)/(?P<type>\*|[A-Z][A-Za-z]{1,63})\."
    r"(?:(?P<v1>read|write|\*)|(?P<v2>c?r?u?d?s?))"
    r"(?P<query>\?[A-Za-z0-9_.:\-]+=[^\s&]+(?:&[A-Za-z0-9_.:\-]+=[^\s&]+)*)?$"
)

_V1_LETTERS = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset("cruds")}

#: interaction name -> SMART v2 permission letter
INTERACTION_LETTER = {"read": "r", "search": "s"}


class ScopeError(ValueError):
    """A scope string violates the SMART grammar (maps to OAuth ``invalid_scope``)."""


@dataclass(frozen=True)
class ClinicalScope:
    """A parsed clinical scope.

    ``level`` is ``"patient"`` or ``"user"``; ``resource_type`` a FHIR type or
    ``"*"``; ``letters`` the v2 permission letters it grants (v1 mapped:
    ``read`` -> ``rs``, ``write`` -> ``cud``, ``*`` -> ``cruds``); ``version`` 1 or 2.
    """

    level: str
    resource_type: str
    letters: frozenset
    version: int

    def covers(self, resource_type: str, interaction: str) -> bool:
        """True when this scope permits *interaction* (``read``/``search``) on *resource_type*."""
        letter = INTERACTION_LETTER[interaction]
        return self.resource_type in ("*", resource_type) and letter in self.letters


def parse_clinical_scope(token: str) -> ClinicalScope | None:
    """Parse one clinical scope token; ``None`` if it is not clinical-shaped.

    Raises :class:`ScopeError` for ``system/`` scopes or a clinical-looking
    token with bad permissions (e.g. ``patient/ImagingStudy.sr``, ``.x``).
    """
    if token.startswith("system/"):
        raise ScopeError(f"system-level scope {token!r} is not available in an authorization-code launch")
    if not token.startswith(("patient/", "user/")):
        return None
    match = _CLINICAL.match(token)
    if not match or (match.group("v2") == "" and match.group("v1") is None):
        raise ScopeError(f"malformed SMART clinical scope {token!r}")
    if match.group("v1") is not None:
        if match.group("query"):
            raise ScopeError(f"SMART v1 scope {token!r} cannot carry a query")
        letters, version = _V1_LETTERS[match.group("v1")], 1
    else:
        letters, version = frozenset(match.group("v2")), 2
    return ClinicalScope(match.group("level"), match.group("type"), letters, version)


def validate_scope(scope: str | None) -> list[str]:
    """Validate a space-separated scope string; return its tokens (order kept, de-duplicated).

    Raises :class:`ScopeError` when empty, when a token is neither a known
    non-clinical scope nor a well-formed clinical scope.
    """
    tokens = list(dict.fromkeys((scope or "").split()))
    if not tokens:
        raise ScopeError("scope is required")
    for token in tokens:
        if token in NON_CLINICAL_SCOPES:
            continue
        if parse_clinical_scope(token) is None:
            raise ScopeError(f"unsupported scope {token!r}")
    return tokens


def clinical_scopes(scope: str) -> list[ClinicalScope]:
    """All clinical scopes of an already validated scope string."""
    result = []
    for token in scope.split():
        try:
            parsed = parse_clinical_scope(token)
        except ScopeError:
            parsed = None
        if parsed:
            result.append(parsed)
    return result


def permitting_levels(scope: str, resource_type: str, interaction: str) -> set[str]:
    """Levels (``{"patient", "user"}`` subset) whose scopes permit the interaction.

    Empty set means ``insufficient_scope``. Example: ``"patient/ImagingStudy.r"``
    permits ``read`` but not ``search`` (SMART 2.2 §Scopes for requesting FHIR resources).
    """
    return {s.level for s in clinical_scopes(scope) if s.covers(resource_type, interaction)}


def narrow_scope(scope: str) -> str:
    """Scope granted under the ``narrow_scope`` fault.

    Keeps the non-clinical scopes asked for and replaces every clinical scope
    with read/search on Patient only (v1 or v2 form, matching the request), so
    ImagingStudy is NOT granted.
    """
    tokens = [t for t in scope.split() if t in NON_CLINICAL_SCOPES]
    versions = {s.version for s in clinical_scopes(scope)}
    tokens.append("patient/Patient.read" if versions == {1} else "patient/Patient.rs")
    return " ".join(tokens)
