"""OperationOutcome text (FHIR R4 §6.1.2 OperationOutcome), read defensively."""

from __future__ import annotations

from typing import Any

MAX_ISSUE_TEXT = 300


def outcome_text(body: Any) -> str:
    """``diagnostics``, ``details.text`` or ``code`` of each issue, joined with ``"; "``; ``""`` for anything else.

    Wrong-typed fields are skipped; each text is cut to 300 characters.
    """
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    issues = body.get("issue")
    texts = []
    for issue in issues if isinstance(issues, list) else ():
        if not isinstance(issue, dict):
            continue
        details = issue.get("details")
        for text in (issue.get("diagnostics"), details.get("text") if isinstance(details, dict) else None,
                     issue.get("code")):
            if isinstance(text, str) and text:
                texts.append(text[:MAX_ISSUE_TEXT])
                break
    return "; ".join(texts)
