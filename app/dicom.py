"""DICOM identifiers shared by the FHIR reading and the viewer requests (ground layer, no app imports)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

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


NON_IMAGE_MODALITIES = frozenset({"SR", "KO", "PR", "DOC", "RTSTRUCT", "RTPLAN", "REG", "SEG"})
"""Series modalities that carry no pixels to show (structured reports, key objects, presentation states, …)."""


@dataclass(frozen=True)
class SeriesSketch:
    """What a thumbnail needs of one series: ``uid``, ``modality`` (or ``None``), ``number`` (SeriesNumber, or
    ``None``), ``instances``: ``(SOP Instance UID, InstanceNumber or None)`` pairs in the order given."""

    uid: str
    modality: str | None
    number: int | None
    instances: tuple[tuple[str, int | None], ...]


def representative_instance(series: Iterable[SeriesSketch]) -> tuple[str, str] | None:
    """``(series uid, SOP instance uid)`` of the instance a study's thumbnail shows, else ``None``.

    The first image series (by SeriesNumber, unnumbered last, else as given) whose modality is not in
    :data:`NON_IMAGE_MODALITIES` and that lists instances; in it the middle instance by InstanceNumber
    (index ``(n - 1) // 2`` of the sorted list: 3 of 5, 2 of 4). Invalid UIDs are skipped.
    """
    candidates = [s for s in series if normalize_study_uid(s.uid) and (s.modality or "").upper()
                  not in NON_IMAGE_MODALITIES]
    for sketch in sorted(candidates, key=lambda s: (s.number is None, s.number or 0)):
        instances = [i for i in sketch.instances if normalize_study_uid(i[0])]
        if instances:
            ordered = sorted(instances, key=lambda i: (i[1] is None, i[1] or 0))
            return normalize_study_uid(sketch.uid), normalize_study_uid(ordered[(len(ordered) - 1) // 2][0])
    return None
