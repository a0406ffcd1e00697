"""FHIR R4 OperationOutcome errors (FHIR R4 §OperationOutcome, §http Status codes)."""

from __future__ import annotations


class FhirError(Exception):
    """An error to return as an OperationOutcome.

    ``status``: HTTP status; ``code``: IssueType code (e.g. ``invalid``,
    ``forbidden``, ``not-found``, ``not-supported``, ``login``); ``diagnostics``:
    human-readable text; ``headers``: extra response headers.
    """

    def __init__(self, status: int, code: str, diagnostics: str, headers: dict[str, str] | None = None):
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.headers = headers or {}

    def to_resource(self) -> dict:
        """The OperationOutcome resource for this error."""
        return operation_outcome(self.code, self.diagnostics)


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict:
    """``{"resourceType": "OperationOutcome", "issue": [{severity, code, diagnostics}]}``."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }
