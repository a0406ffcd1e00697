"""What the study-list page shows, computed once per request: :class:`StudyListPage`, read by ``studies.html``.

The view hands over the launch's list and the request's arguments; every
per-row string (links, RAD-106 viewer URLs) is computed here, not in the template.
Viewer URLs are built only for studies of the launch's own list.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Callable
from urllib.parse import urlencode

from ..config import ViewerSettings
from ..display.iid import DisplayOptions, IIDRequestError, patient_request, study_request
from ..fhir.imaging import StudySummary
from ..fhir.reports import ReportSummary, reports_by_study
from ..fhir.study_list import StudyList
from .list_index import index_of
from .search import StudyQuery

MAX_COMPARE = 4
DISPLAY_ROWS = 200  # rows rendered at first; "Show older studies" adds more (filters search them all)


def dicom_words(text: str | None) -> str:
    """DICOM person-name / code text as words: ``abdomen^liver`` -> ``abdomen, liver``; ``_`` -> space."""
    if not text:
        return ""
    parts = [" ".join(p.replace("_", " ").split()) for p in text.split("^")]
    return ", ".join(p for p in parts if p)


class PriorIndex:
    """The studies that can be priors, by modality, newest first: built once per page, so that finding every
    rendered row's prior costs about one step per row, not a pass over the whole history."""

    def __init__(self, studies: list[StudySummary]):
        self._by_modality: dict[str, list[StudySummary]] = {}
        for other in studies:
            if other.viewable and not other.status_flag and other.started_sort is not None:
                for modality in other.modalities:
                    self._by_modality.setdefault(modality, []).append(other)
        for candidates in self._by_modality.values():
            candidates.sort(key=lambda s: -(s.started_sort or 0.0))
        self._keys = {m: [-(s.started_sort or 0.0) for s in c] for m, c in self._by_modality.items()}

    def prior_of(self, study: StudySummary) -> StudySummary | None:
        """The most recent viewable study before ``study`` with the same (first) modality and, where both
        record body sites, a shared body site; ``None`` when there is none (or ``study`` is undated)."""
        if study.started_sort is None or not study.modalities:
            return None
        modality = study.modalities[0]
        candidates = self._by_modality.get(modality, [])
        sites = {s.casefold() for s in study.body_sites}
        for other in candidates[bisect.bisect_right(self._keys.get(modality, []), -study.started_sort):]:
            if other is study or other.id == study.id:
                continue
            other_sites = {s.casefold() for s in other.body_sites}
            if sites and other_sites and not sites & other_sites:
                continue
            return other
        return None


def prior_of(study: StudySummary, studies: list[StudySummary]) -> StudySummary | None:
    """:meth:`PriorIndex.prior_of` over ``studies`` (for one study; a page builds the index once)."""
    return PriorIndex(studies).prior_of(study)


@dataclass(frozen=True)
class StudyRow:
    """One rendered row: the study, its link in this launch, its RAD-106 URL (``None``: viewer off),
    and its prior (``prior_href`` / ``prior_viewer_url``: the study with its prior, when there is one)."""

    study: StudySummary
    href: str
    viewer_url: str | None
    prior: StudySummary | None = None
    prior_href: str | None = None
    prior_viewer_url: str | None = None
    report: ReportSummary | None = None
    reports_available: bool = True
    age_text: str = ""

    @property
    def report_status(self) -> str | None:
        """The report's status code (``final``, ``preliminary``, …), ``None`` without a report."""
        return (self.report.status or "unknown") if self.report else None

    @property
    def report_label(self) -> str:
        """What the row says about the report: ``Report: Final``, ``No report``, or ``""`` (reports not available)."""
        if self.report:
            return f"Report: {self.report.status_label}"
        return "No report" if self.reports_available else ""

    @property
    def description_text(self) -> str:
        """The description as words (DICOM ``^`` separators become commas)."""
        return dicom_words(self.study.description)

    @property
    def body_site_text(self) -> str:
        """The body sites as words (``abdomen^liver`` -> ``abdomen, liver``)."""
        return "; ".join(dicom_words(s) for s in self.study.body_sites)

    @property
    def selected_label(self) -> str:
        """What the viewer bar says for this study."""
        return f"{self.study.description or 'Study'} {self.study.started_display}".strip()


@dataclass(frozen=True)
class StudyListPage:
    """Everything ``studies.html`` reads.

    ``rows``: the rows rendered (newest first, at most ``show``); ``matching``:
    how many studies pass the filter; ``more``: how many of those are not
    rendered; ``selected``: the studies in the viewer (at most 4);
    ``missing_selection`` / ``dropped_selection``: requested studies not in the
    list / beyond the comparison limit; ``complete``: every study is on the page,
    so the live filter may run without a reload.
    """

    launch_id: str
    patient_id: str
    study_list: StudyList
    show_banner: bool
    viewer: ViewerSettings
    query: StudyQuery
    rows: list[StudyRow]
    matching: int
    more: int
    show_more_url: str | None
    selected: list[StudySummary]
    viewer_url: str | None
    missing_selection: int
    dropped_selection: int
    patient_viewer_url: str | None
    all_modalities: list[str]
    page_url: str
    max_compare: int = MAX_COMPARE
    show_all: bool = False

    @property
    def banner(self):
        """The patient banner, or ``None`` when it could not be read."""
        return self.study_list.banner

    @property
    def selected_ids(self) -> list[str]:
        """FHIR ids of the studies in the viewer."""
        return [s.id for s in self.selected if s.id]

    @property
    def report_rows(self) -> list[StudyRow]:
        """Rows whose study has a report (each rendered once, shown beside the viewer when selected)."""
        return [r for r in self.rows if r.report is not None]

    @property
    def reports_problem(self) -> str | None:
        """Why no reports can be shown (scope not granted, read failed), else ``None``."""
        return self.study_list.reports_problem

    @property
    def viewer_key(self) -> str:
        """What the viewer pane shows, as one string (the iframe's ``name``: history restores stay consistent)."""
        if self.show_all:
            return "all"
        return ",".join(self.selected_ids) if self.viewer_url else ""

    @property
    def next_batch(self) -> int:
        """How many rows "Show older studies" adds."""
        return min(self.more, DISPLAY_ROWS)

    @property
    def complete(self) -> bool:
        """True when the unfiltered list is entirely on the page (the live filter can work in place)."""
        return not (self.more or self.query.active)

    @property
    def viewer_title(self) -> str:
        """The viewer bar's title."""
        if self.show_all:
            return "All imaging of this patient"
        if not self.selected:
            return "No study selected"
        return " · ".join(f"{s.description or 'Study'} {s.started_display}" for s in self.selected)


def display_options(viewer: ViewerSettings) -> DisplayOptions:
    """RAD-106 request-wide options from the viewer settings."""
    return DisplayOptions(viewer.viewer_type, viewer.diagnostic_quality, viewer.key_images_only)


def study_for_report(study_list: StudyList, report_id: str | None) -> str | None:
    """The id of the study ``DiagnosticReport/<report_id>`` reports on (``fhirContext`` of the launch), else ``None``."""
    if not report_id:
        return None
    return next((study_id for study_id, report in index_of(study_list).reports.items()
                 if report.id == report_id), None)


def viewer_base(viewer: ViewerSettings, studies: list[StudySummary]) -> str:
    """The IID display for ``studies``: their own allowlisted ``ihe-iid`` Endpoint when they all name the same one
    (FHIR R4 ImagingStudy.endpoint), else the registration's ``viewer.base_url``."""
    own = {s.viewer_base_url for s in studies}
    return own.pop() if len(own) == 1 and None not in own else viewer.base_url


def viewer_url_for(viewer: ViewerSettings, studies: list[StudySummary]) -> str | None:
    """RAD-106 STUDY request for the viewable studies among ``studies`` (all from the launch's list), else ``None``."""
    viewable = [s for s in studies if s.viewable]
    if not viewable:
        return None
    return study_request(viewer_base(viewer, viewable), study_uids=[s.study_instance_uid for s in viewable],
                         options=display_options(viewer))


def patient_viewer_url(viewer: ViewerSettings, study_list: StudyList) -> str | None:
    """RAD-106 PATIENT request for the launch patient, when the EHR gave an MRN with an OID issuer."""
    banner = study_list.banner
    if banner is None or not banner.mrn or not banner.mrn_issuer_oid:
        return None
    try:
        return patient_request(viewer.base_url, patient_id=banner.mrn,
                               assigning_authority_oid=banner.mrn_issuer_oid, options=display_options(viewer))
    except IIDRequestError:
        return None


def build_study_list_page(*, launch_id: str, patient_id: str, study_list: StudyList, show_banner: bool,
                          viewer: ViewerSettings, query: StudyQuery, requested_ids: list[str], show: int,
                          page_url: str, show_all: bool = False) -> StudyListPage:
    """Compute the page for one request.

    ``requested_ids``: the ``study`` arguments (FHIR ids, in order, duplicates
    ignored); ``show``: how many matching rows to render (≥ 200);
    ``page_url``: this launch's list URL (row links and "show older" are built on it);
    ``show_all``: the viewer shows the patient's whole imaging (RAD-106 PATIENT request), no study selected.
    """
    index = index_of(study_list)  # per-list work is done once per decoded list (app/web/list_index.py)
    requested = list(dict.fromkeys(requested_ids))
    wanted = requested[:MAX_COMPARE]
    selected = [s for s in (index.find(i) for i in wanted) if s is not None]
    matches = query.select(study_list.studies) if query.active else study_list.studies
    options = display_options(viewer)
    if show_all:
        wanted, selected = [], []
    linked = index.reports
    now = datetime.now(timezone.utc)
    birth = study_list.banner.birth_date if study_list.banner else None
    priors = index.memo("priors", lambda: PriorIndex(study_list.studies))

    def build_rows() -> list[StudyRow]:
        return [_row(s, priors, page_url, viewer, options, linked.get(s.id or ""),
                     study_list.reports_problem is None, age_text(s, now, birth)) for s in matches[:show]]
    # the unfiltered rows are the same for every re-open within a minute (ages are in days); keyed by the very
    # studies shown, in order (held by the list, so their ids are stable)
    rows = build_rows() if query.active else index.memo(
        ("rows", page_url, viewer, now.strftime("%Y-%m-%dT%H:%M"), tuple(map(id, matches[:show]))), build_rows)
    more = len(matches) - len(rows)
    show_more_url = None
    if more:
        args = [("show", show + DISPLAY_ROWS), ("modality", query.modality), ("q", query.text)] + \
            [("study", i) for i in wanted]
        show_more_url = page_url + "?" + urlencode([(k, v) for k, v in args if v != ""])
    return StudyListPage(
        launch_id=launch_id, patient_id=patient_id, study_list=study_list, show_banner=show_banner, viewer=viewer,
        query=query, rows=rows, matching=len(matches), more=more, show_more_url=show_more_url, selected=selected,
        viewer_url=patient_viewer_url(viewer, study_list) if show_all else viewer_url_for(viewer, selected),
        show_all=show_all and patient_viewer_url(viewer, study_list) is not None, missing_selection=len(wanted) - len(selected),
        dropped_selection=len(requested) - len(wanted), patient_viewer_url=patient_viewer_url(viewer, study_list),
        all_modalities=index.modalities, page_url=page_url)


def _study_href(page_url: str, ids: list[str]) -> str:
    return page_url + "?" + urlencode([("study", i) for i in ids])


def _row(study: StudySummary, priors: PriorIndex, page_url: str, viewer: ViewerSettings,
         options: DisplayOptions, report: ReportSummary | None = None, reports_available: bool = True,
         age: str = "") -> StudyRow:
    """One row, with its prior when the study can be viewed and has one, and its report."""
    extra = {"report": report, "reports_available": reports_available, "age_text": age}
    viewer_url = study_request(viewer_base(viewer, [study]), study_uids=[study.study_instance_uid], options=options) \
        if study.viewable else None
    prior = priors.prior_of(study) if viewer_url else None
    if prior is None or not prior.id or not study.id:
        return StudyRow(study, _study_href(page_url, [study.id or ""]), viewer_url, **extra)
    return StudyRow(study, _study_href(page_url, [study.id or ""]), viewer_url, prior,
                    _study_href(page_url, [study.id, prior.id]),
                    study_request(viewer_base(viewer, [study, prior]),
                                  study_uids=[study.study_instance_uid, prior.study_instance_uid], options=options),
                    **extra)


def relative_age(then: datetime, now: datetime) -> str:
    """``today``, ``3 d ago``, ``5 wk ago``, ``7 mo ago``, ``12 y ago`` (``in the future`` after ``now``)."""
    days = (now - then).total_seconds() / 86400
    if days < 0:
        return "in the future"
    if days < 1:
        return "today"
    if days < 14:
        return f"{int(days)} d ago"
    if days < 61:
        return f"{int(days // 7)} wk ago"
    if days < 730:
        return f"{int(days // 30.44)} mo ago"
    return f"{int(days // 365.25)} y ago"


def age_at(birth: date, then: date) -> int:
    """Whole years between ``birth`` and ``then``."""
    return then.year - birth.year - ((then.month, then.day) < (birth.month, birth.day))


def age_text(study: StudySummary, now: datetime, birth_date: str | None) -> str:
    """``3 d ago · age 46`` (relative age of the study and the patient's age at the study), parts when known."""
    if study.started_sort is None:
        return ""
    then = datetime.fromtimestamp(study.started_sort, timezone.utc)
    parts = [relative_age(then, now)]
    try:
        birth = date.fromisoformat(birth_date[:10]) if birth_date and len(birth_date) >= 10 else None
    except ValueError:
        birth = None
    if birth is not None and study.started and len(study.started) >= 10:
        try:
            parts.append(f"age {age_at(birth, date.fromisoformat(study.started[:10]))}")
        except ValueError:
            pass
    return " · ".join(parts)
