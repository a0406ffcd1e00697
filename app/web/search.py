"""The study-list filter: one implementation, used for the page and for the list's live filter (``/matches``).

A study matches when it has the chosen modality (if any) and every word of
the free text occurs in its description, series descriptions, body sites,
accession number, date (also as words: "Aug 2004", "August 2004") or
modalities (case- and accent-insensitive, NFKC-normalised; DICOM ``^`` as a space).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Iterable

from ..fhir.imaging import StudySummary

MAX_QUERY_LENGTH = 200

#: list orders: newest first (the default, the EHR's ``_sort=-started``), oldest first, by modality (then newest)
SORTS = {"newest": "Newest first", "oldest": "Oldest first", "modality": "Modality"}
DEFAULT_SORT = "newest"


def sort_studies(studies: Iterable[StudySummary], sort: str) -> list[StudySummary]:
    """``studies`` in the order ``sort`` names (:data:`SORTS`); undated studies last in date orders, stable.

    ``modality``: by first modality code (studies without one last), newest first within a modality.
    """
    newest = sorted(studies, key=lambda s: (s.started_sort is None, -(s.started_sort or 0.0)))
    if sort == "oldest":
        return sorted(newest, key=lambda s: (s.started_sort is None, s.started_sort or 0.0))
    if sort == "modality":
        return sorted(newest, key=lambda s: (not s.modalities, s.modalities[0] if s.modalities else ""))
    return newest


def normalise(text: str) -> str:
    """Case-folded, NFKC-normalised, accents removed, white space collapsed."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def human_date(started: str | None) -> str:
    """``2004-08-26…`` -> ``Aug August 2004`` (the words a clinician types), ``""`` when not a date."""
    if not started or len(started) < 7 or not started[:4].isdigit() or not started[5:7].isdigit():
        return ""
    month = int(started[5:7])
    if not 1 <= month <= 12:
        return ""
    return f"{MONTHS[month - 1][:3]} {MONTHS[month - 1]} {started[:4]}"


def search_text(study: StudySummary) -> str:
    """The normalised text a study is searched by."""
    parts = (study.description, study.accession_number, study.started_display, human_date(study.started),
             " ".join(study.modalities), " ".join(study.series_descriptions), " ".join(study.body_sites))
    return normalise(" ".join(filter(None, parts)).replace("^", " "))


@dataclass(frozen=True)
class StudyQuery:
    """A list filter and order: ``modality`` (a DICOM modality code or ``""``), ``text`` (free text, at most
    200 characters), ``sort`` (a key of :data:`SORTS`)."""

    modality: str = ""
    text: str = ""
    sort: str = DEFAULT_SORT

    @classmethod
    def from_args(cls, modality: str | None, text: str | None, sort: str | None = None) -> "StudyQuery":
        """From request arguments (missing ones empty; the text cut to 200 characters; an unknown sort is the default)."""
        return cls(modality=(modality or "")[:16], text=(text or "")[:MAX_QUERY_LENGTH],
                   sort=sort if sort in SORTS else DEFAULT_SORT)

    @property
    def active(self) -> bool:
        """True when anything is filtered."""
        return bool(self.modality or self.text.strip())

    def select(self, studies: Iterable[StudySummary]) -> list[StudySummary]:
        """The studies matching this query, in its order (:func:`sort_studies`)."""
        words = normalise(self.text).split()
        return sort_studies([s for s in studies
                             if (not self.modality or self.modality in s.modalities)
                             and all(w in search_text(s) for w in words)], self.sort)
