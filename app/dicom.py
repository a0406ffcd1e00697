"""DICOM identifiers shared by the FHIR reading and the viewer requests (ground layer, no app imports)."""

from __future__ import annotations

import re

OID_PREFIX = "urn:oid:"
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
MAX_UID_LENGTH = 64


def normalize_study_uid(value: object) -> str | None:
    """Strip ``urn:oid:`` (RFC 3001) and return the UID if it is a valid DICOM UID, else ``None``.

    Valid (DICOM PS3.5 §9.1): digits in dot-separated components, at most 64 characters.
    """
    if not isinstance(value, str):
        return None
    uid = value.strip()
    if uid.lower().startswith(OID_PREFIX):
        uid = uid[len(OID_PREFIX):]
    if len(uid) > MAX_UID_LENGTH or not _UID.fullmatch(uid):
        return None
    return uid
