"""What the study-list page shows, computed once per request: :class:`StudyListPage`, read by ``studies.html``.

The view hands over the launch's list and the request's arguments; every
per-row string (links, RAD-106 viewer URLs) is computed here, not in the template.
Viewer URLs are built only for studies of the launch's own list.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timezone, tzinfo
from functools import lru_cache
from typing import Callable
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..config import ViewerSettings
from ..display.iid import DisplayOptions, IIDRequestError, patient_request, study_request
from ..fhir.imaging import StudySummary
from ..fhir.reports import ReportSummary, reports_by_study
from ..fhir.study_list import StudyList
from .list_index import index_of
from .search import DEFAULT_SORT, SORTS, StudyQuery

MAX_COMPARE = 4
DISPLAY_ROWS = 200  # rows rendered at first; "Show older studies" adds more (filters search them all)
YEAR_SEPARATORS_FROM = 20  # a list of at least this many matching studies gets a heading per year (date orders)


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
    time_text: str = ""
    year_heading: str | None = None
    prior_time_text: str = ""
    #: this row's HTML per selection state (:func:`app.web.row_html.row_html`); not part of its value
    rendered: dict = field(default_factory=dict, compare=False, repr=False)

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
        """What the viewer bar says for this study (its time in the list's zone)."""
        return f"{self.study.description or 'Study'} {self.time_text}".strip()


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
    zone_label: str = ""
    show: int = DISPLAY_ROWS

    @property
    def sorts(self) -> dict[str, str]:
        """The list orders offered (value -> label)."""
        return SORTS

    @property
    def loading(self) -> bool:
        """True while older pages are being fetched (the page polls ``/l/<id>/rows``)."""
        return self.study_list.loading is not None

    @property
    def loaded(self) -> int:
        """How many studies of the patient are in the list so far."""
        return len(self.study_list.studies)

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
        """True when the unfiltered, settled list is entirely on the page (the live filter can work in place)."""
        return not (self.more or self.query.active or self.loading)

    @property
    def viewer_title(self) -> str:
        """The viewer bar's title."""
        if self.show_all:
            return "All imaging of this patient"
        if not self.selected:
            return "No study selected"
        return " · ".join(f"{s.description or 'Study'} {self.time_of(s)}".strip() for s in self.selected)

    def time_of(self, study: StudySummary) -> str:
        """``study``'s time as the list shows it (its zone, :func:`time_text`)."""
        return time_text(study.started, list_zone(self.viewer.time_zone)[0])


@dataclass(frozen=True)
class RowsFragment:
    """What ``_study_rows.html`` reads when rows are appended to a page already shown (``/l/<id>/rows``):
    the launch (thumbnail links) and the rows; no row is highlighted (the page applies its own selection)."""

    launch_id: str
    rows: list[StudyRow]
    selected_ids: tuple[str, ...] = ()


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
    # the unfiltered list in each order is computed once per decoded list (sorting 10,000 studies is ~10 ms)
    matches = query.select(study_list.studies) if query.active else \
        index.memo(("sorted", query.sort), lambda: query.select(study_list.studies))
    if show_all:
        wanted, selected = [], []
    now = datetime.now(timezone.utc)
    # the unfiltered rows are the same for every re-open within a minute (ages are in days); keyed by the very
    # studies shown, in order (held by the list, so their ids are stable)
    rows = build_rows(study_list, matches, 0, show, viewer=viewer, page_url=page_url, query=query) \
        if query.active else index.memo(
            ("rows", page_url, viewer, query.sort, now.strftime("%Y-%m-%dT%H:%M"), tuple(map(id, matches[:show]))),
            lambda: build_rows(study_list, matches, 0, show, viewer=viewer, page_url=page_url, query=query))
    more = len(matches) - len(rows)
    show_more_url = None
    if more:
        args = [("show", show + DISPLAY_ROWS), ("modality", query.modality), ("q", query.text),
                ("sort", "" if query.sort == DEFAULT_SORT else query.sort)] + [("study", i) for i in wanted]
        show_more_url = page_url + "?" + urlencode([(k, v) for k, v in args if v != ""])
    return StudyListPage(
        launch_id=launch_id, patient_id=patient_id, study_list=study_list, show_banner=show_banner, viewer=viewer,
        query=query, rows=rows, matching=len(matches), more=more, show_more_url=show_more_url, selected=selected,
        viewer_url=patient_viewer_url(viewer, study_list) if show_all else viewer_url_for(viewer, selected),
        show_all=show_all and patient_viewer_url(viewer, study_list) is not None, missing_selection=len(wanted) - len(selected),
        dropped_selection=len(requested) - len(wanted), patient_viewer_url=patient_viewer_url(viewer, study_list),
        all_modalities=index.modalities, page_url=page_url,
        zone_label=list_zone(viewer.time_zone)[1], show=show)


def build_rows(study_list: StudyList, matches: list[StudySummary], after: int, limit: int, *,
               viewer: ViewerSettings, page_url: str, query: StudyQuery) -> list[StudyRow]:
    """Rows ``matches[after:after + limit]`` (``matches``: the list's studies passing ``query``, in its order),
    each with its link, viewer URL, prior, report, ages, time in the list's zone and year heading.

    The same rows whether rendered with the page or appended later (``/l/<id>/rows``): a year heading depends
    only on the row before it in ``matches``.
    """
    if not matches[after:after + limit]:
        return []  # a poll that only asks for the counts builds no index
    options = display_options(viewer)
    index = index_of(study_list)  # report links and priors are built once per decoded list
    linked = index.reports
    now = datetime.now(timezone.utc)
    birth = study_list.banner.birth_date if study_list.banner else None
    priors = index.memo("priors", lambda: PriorIndex(study_list.studies))
    zone = list_zone(viewer.time_zone)[0]
    headings = year_headings(matches, after, limit, zone, query.sort)
    return [_row(s, priors, page_url, viewer, options, linked.get(s.id or ""), study_list.reports_problem is None,
                 age_text(s, now, birth), zone, heading, query.sort)
            for s, heading in zip(matches[after:after + limit], headings)]


def year_of(study: StudySummary, zone: tzinfo) -> str | None:
    """The study's year in the list's zone (``"2024"``), ``None`` when undated."""
    if study.started_sort is None:
        return None
    if study.started and len(study.started) <= 10:
        return study.started[:4]
    return str(datetime.fromtimestamp(study.started_sort, zone).year)


def year_headings(matches: list[StudySummary], after: int, limit: int, zone: tzinfo,
                  sort: str = DEFAULT_SORT) -> list[str | None]:
    """For each of ``matches[after:after + limit]``: the year heading shown before it (``"2024"``,
    ``"Undated"``), or ``None``. Only in date orders and on lists of at least :data:`YEAR_SEPARATORS_FROM`
    studies; the first row gets one, then each row whose year differs from the row before it."""
    shown = matches[after:after + limit]
    if sort not in ("newest", "oldest") or len(matches) < YEAR_SEPARATORS_FROM:
        return [None] * len(shown)
    previous = year_of(matches[after - 1], zone) or "Undated" if after > 0 else None
    headings = []
    for study in shown:
        year = year_of(study, zone) or "Undated"
        headings.append(year if year != previous else None)
        previous = year
    return headings


def _study_href(page_url: str, ids: list[str], sort: str = DEFAULT_SORT) -> str:
    extra = [("sort", sort)] if sort != DEFAULT_SORT else []
    return page_url + "?" + urlencode([("study", i) for i in ids] + extra)


def _row(study: StudySummary, priors: PriorIndex, page_url: str, viewer: ViewerSettings,
         options: DisplayOptions, report: ReportSummary | None = None, reports_available: bool = True,
         age: str = "", zone: tzinfo = timezone.utc, heading: str | None = None,
         sort: str = DEFAULT_SORT) -> StudyRow:
    """One row, with its prior when the study can be viewed and has one, and its report; times in ``zone``."""
    extra = {"report": report, "reports_available": reports_available, "age_text": age,
             "time_text": time_text(study.started, zone), "year_heading": heading}
    viewer_url = study_request(viewer_base(viewer, [study]), study_uids=[study.study_instance_uid], options=options) \
        if study.viewable else None
    prior = priors.prior_of(study) if viewer_url else None
    if prior is None or not prior.id or not study.id:
        return StudyRow(study, _study_href(page_url, [study.id or ""], sort), viewer_url, **extra)
    return StudyRow(study, _study_href(page_url, [study.id or ""], sort), viewer_url, prior,
                    _study_href(page_url, [study.id, prior.id], sort),
                    study_request(viewer_base(viewer, [study, prior]),
                                  study_uids=[study.study_instance_uid, prior.study_instance_uid], options=options),
                    prior_time_text=time_text(prior.started, zone), **extra)


# ---- one time zone for the whole list ---------------------------------------------------------------------
ZONEINFO_DIRS = ("/usr/share/zoneinfo/", "/usr/lib/zoneinfo/", "/usr/share/lib/zoneinfo/")


def server_zone_name() -> str | None:
    """The server's IANA zone name: ``TZ``, else where ``/etc/localtime`` links to; ``None`` when unknown."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            target = os.path.realpath("/etc/localtime")
        except OSError:
            return None
        name = next((target[len(d):] for d in ZONEINFO_DIRS if target.startswith(d)), "")
    return name or None


@lru_cache(maxsize=16)
def list_zone(name: str | None) -> tuple[tzinfo, str]:
    """``(zone, label)``: the zone the list shows times in (``viewer.time_zone``, else the server's) and the
    label said once in the list head, e.g. ``Times in America/Chicago``. An unknown server zone is its
    current UTC offset (``Times in UTC+01:00``)."""
    for candidate in (name, None if name else server_zone_name()):
        if candidate:
            try:
                zone = ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
            label = "UTC" if candidate in ("UTC", "Etc/UTC", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu") else candidate
            return zone, f"Times in {label}"
    local = datetime.now().astimezone().tzinfo or timezone.utc
    return local, f"Times in {offset_label(datetime.now(local).utcoffset())}"


def offset_label(offset) -> str:
    """``UTC``, ``UTC+01:00``, ``UTC−05:00`` (a minus sign) for a ``timedelta`` offset."""
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "\u2212"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def time_text(started: str | None, zone: tzinfo) -> str:
    """A FHIR ``started`` as the list shows it: a dateTime with an offset in ``zone`` (``2024-03-01 16:00``);
    a date alone, or a time without offset (local to the EHR, zone unknown), as recorded; ``""`` when none.

    The study's own offset is kept in ``started`` (the ``<time datetime>`` attribute)."""
    if not started:
        return ""
    if len(started) > 10 and "T" in started:
        try:
            moment = datetime.fromisoformat(started.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    text = started.replace("T", " ")
    return text[:16] if len(text) >= 16 else text[:10]


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
