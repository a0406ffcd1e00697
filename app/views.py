"""Web views: start page, SMART launch and callback, the study list with its viewer pane.

Routes
``GET /``                         start page (standalone launch: pick an EHR)
``GET /launch?iss=…[&launch=…]``  EHR launch (with ``launch``) or standalone launch (SMART 2.2 §Launch App)
``GET /launch/check/<launch_id>`` cookie check for launches inside an EHR iframe
``GET /callback?code=…&state=…``  OAuth2 redirect (SMART 2.2 §Obtain authorization code, response)
``GET /l/<launch_id>/``           the patient's studies; ``study`` (repeatable) selects what the viewer shows
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, urlencode

from flask import Blueprint, after_this_request, current_app, redirect, render_template, request, url_for

from .errors import AppError, ImagingScopeNotGranted, LaunchNotFound, LaunchNotVerified, UnknownIss
from .iid import DisplayOptions, IIDRequestError, patient_request, study_request
from .launch_context import LaunchContext
from .scopes import allows_search
from .security import browser_id, ensure_browser_id, in_iframe
from .smart import build_authorization_request, exchange_code, raise_for_callback_error
from .imaging import StudySummary
from .study_list import StudyList, load_study_list, save_study_list

bp = Blueprint("views", __name__)

MAX_LAUNCH_LENGTH = 4096
MAX_COMPARE = 4
DISPLAY_ROWS = 200  # rows rendered at first; "Show older studies" adds more (filters search them all)


def _services():
    return current_app.extensions["imaging_app"]


@bp.get("/")
def start():
    """Start page: the registered EHRs, each a standalone-launch link."""
    settings = _services().settings
    ehrs = [e for e in settings.ehrs if e.standalone]
    return render_template("start.html", ehrs=ehrs)


def _relaunch_url(iss: str, launch: str | None) -> str:
    query = {"iss": iss, **({"launch": launch} if launch else {})}
    return url_for("views.launch") + "?" + urlencode(query)


@bp.get("/launch")
def launch():
    """Start a launch: check ``iss``, discover, prepare PKCE and state, redirect to ``authorize``."""
    services = _services()
    iss = request.args.get("iss", "")
    launch_param = request.args.get("launch")
    if not iss:
        raise AppError("The launch request has no iss (FHIR server) parameter.", status=400,
                       title="This launch is incomplete",
                       action="Launch the app from the EHR, or choose an EHR on the app's start page.")
    ehr = services.settings.find_ehr(iss)
    if ehr is None:
        raise UnknownIss("The launch named a FHIR server that is not in this app's registration.")
    if launch_param is not None and not (0 < len(launch_param) <= MAX_LAUNCH_LENGTH):
        raise AppError("The launch parameter is empty or too long.", status=400, title="This launch is malformed")
    smart_config = services.discovery.discover(iss)
    auth_request = build_authorization_request(
        ehr, smart_config, iss=iss, launch=launch_param, redirect_uri=services.settings.redirect_uri,
        pool=services.session)
    bid, created = ensure_browser_id()
    launch_id = services.store.create_pending(bid, auth_request.state, {
        "iss": iss, "launch": launch_param, "code_verifier": auth_request.code_verifier,
        "scope": auth_request.scope, "token_endpoint": smart_config.token_endpoint,
        "authorize_url": auth_request.url})
    if created and in_iframe():
        return redirect(url_for("views.launch_check", launch_id=launch_id), 303)
    return redirect(auth_request.url, 303)


@bp.get("/launch/check/<launch_id>")
def launch_check(launch_id: str):
    """Inside an EHR iframe: continue only if the browser kept the cookie, else offer a new window."""
    pending = _services().store.get_pending(launch_id)
    if pending is None:
        raise LaunchNotFound()
    record, browser_digest = pending
    if _services().store.browser_matches(browser_digest, browser_id()):
        return redirect(record.data["authorize_url"], 303)
    _services().store.discard(launch_id)
    return render_template("cookie_blocked.html",
                           relaunch_url=_relaunch_url(record.data["iss"], record.data.get("launch"))), 409


@bp.get("/callback")
def callback():
    """OAuth2 redirect: verify ``state`` and the browser, handle ``error``, exchange the code, keep context."""
    services = _services()
    state = request.args.get("state")
    if not state:
        raise LaunchNotVerified("The EHR's answer carried no state.")
    claimed = services.store.claim_state(state)
    if claimed is None:
        raise LaunchNotVerified("The state is unknown, already used, or expired.")
    record, browser_digest = claimed
    if not services.store.browser_matches(browser_digest, browser_id()):
        services.store.discard(record.id)
        # an EHR launch id has been used at the EHR by now: only a standalone launch can be restarted here
        relaunch = None if record.data.get("launch") else _relaunch_url(record.data["iss"], None)
        raise LaunchNotVerified("This browser did not start the launch, or it blocked the app's cookie.",
                                relaunch_url=relaunch)
    if request.args.get("error"):
        services.store.discard(record.id)
        raise_for_callback_error(request.args["error"], request.args.get("error_description"))
    code = request.args.get("code")
    if not code:
        services.store.discard(record.id)
        raise LaunchNotVerified("The EHR's answer carried no authorization code.")
    ehr = services.settings.find_ehr(record.data["iss"])
    if ehr is None:
        services.store.discard(record.id)
        raise UnknownIss("The FHIR server of this launch is no longer registered.")
    try:
        grant = exchange_code(ehr, record.data["token_endpoint"], code=code,
                              code_verifier=record.data["code_verifier"],
                              redirect_uri=services.settings.redirect_uri, requested=record.data["scope"],
                              pool=services.session)
        if not allows_search(grant.scope, "ImagingStudy"):
            raise ImagingScopeNotGranted("The granted scope does not include searching ImagingStudy.")
    except AppError:
        services.store.discard(record.id)
        raise
    services.store.activate(record.id, {
        "iss": record.data["iss"], "launch": record.data.get("launch"), "patient": grant.patient,
        "token": grant.to_dict(), "token_endpoint": record.data["token_endpoint"]},
        services.settings.launch_lifetime_seconds)
    query = {"study": grant.preselected_study_id} if grant.preselected_study_id else {}
    return redirect(url_for("views.studies", launch_id=record.id, **query), 303)


def _display_options() -> DisplayOptions:
    viewer = _services().settings.viewer
    return DisplayOptions(viewer.viewer_type, viewer.diagnostic_quality, viewer.key_images_only)


def _viewer_url(studies) -> str | None:
    """RAD-106 STUDY request for the viewable studies among ``studies`` (all from the launch's list)."""
    uids = [s.study_instance_uid for s in studies if s.viewable]
    if not uids:
        return None
    return study_request(_services().settings.viewer.base_url, study_uids=uids, options=_display_options())


def _patient_viewer_url(study_list: StudyList) -> str | None:
    """RAD-106 PATIENT request for the launch patient, when the EHR gave an MRN with an OID issuer."""
    banner = study_list.banner
    if banner is None or not banner.mrn or not banner.mrn_issuer_oid:
        return None
    try:
        return patient_request(_services().settings.viewer.base_url, patient_id=banner.mrn,
                               assigning_authority_oid=banner.mrn_issuer_oid, options=_display_options())
    except IIDRequestError:
        return None


@lru_cache(maxsize=16384)
def _single_study_url(base_url: str, study_instance_uid: str, options: DisplayOptions) -> str:
    """RAD-106 URL of one study; memoised (the same rows are rendered on every re-open)."""
    return study_request(base_url, study_uids=[study_instance_uid], options=options)


@dataclass(frozen=True)
class StudyRow:
    """One rendered row: the study, its link in this launch, its viewer URL (``None``: viewer off), filter text."""

    study: StudySummary
    href: str
    viewer_url: str | None
    search_text: str


def _search_text(study: StudySummary) -> str:
    return " ".join(filter(None, (study.description, study.accession_number, study.started_display,
                                  " ".join(study.modalities)))).casefold()


def _matching(study_list: StudyList, modality: str, text: str) -> list[tuple[StudySummary, str]]:
    """``(study, search_text)`` of every study passing the modality and free-text filters, in list order."""
    text = text.casefold()
    matches = []
    for study in study_list.studies:
        if modality and modality not in study.modalities:
            continue
        search_text = _search_text(study)
        if not text or text in search_text:
            matches.append((study, search_text))
    return matches


def _rows(matches: list[tuple[StudySummary, str]], launch_id: str) -> list[StudyRow]:
    """Rows to render; per-row strings are computed here once, not in the template."""
    base_url = _services().settings.viewer.base_url
    options = _display_options()
    page_url = url_for("views.studies", launch_id=launch_id)
    return [StudyRow(study, f"{page_url}?study={quote(study.id or '', safe='')}",
                     _single_study_url(base_url, study.study_instance_uid, options) if study.viewable else None,
                     search_text)
            for study, search_text in matches]


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(request.args.get(name, default)), low), high)
    except ValueError:
        return default


@bp.get("/l/<launch_id>/")
def studies(launch_id: str):
    """The launch patient's studies, and the selected ones in the viewer pane."""
    services = _services()
    context = LaunchContext.load(services.store, services.settings, services.session, launch_id, browser_id())
    study_list, fetched = load_study_list(context, services.executor, force=request.args.get("refresh") == "1")
    if fetched:
        @after_this_request
        def _keep_list(response):
            response.call_on_close(lambda: save_study_list(context, study_list))  # after the page is sent
            return response
    requested_ids = list(dict.fromkeys(request.args.getlist("study")))
    selected_ids = requested_ids[:MAX_COMPARE]
    selected = [s for s in (study_list.find(i) for i in selected_ids) if s is not None]
    missing = len(selected_ids) - len(selected)
    modality = request.args.get("modality", "")
    text = request.args.get("q", "")[:200]
    matches = _matching(study_list, modality, text)
    show = _int_arg("show", DISPLAY_ROWS, DISPLAY_ROWS, 100_000)
    rows = _rows(matches[:show], launch_id)
    more = len(matches) - len(rows)
    show_more_url = None
    if more:
        query = [("show", show + DISPLAY_ROWS), ("modality", modality), ("q", text)] + \
            [("study", i) for i in selected_ids]
        show_more_url = url_for("views.studies", launch_id=launch_id) + "?" + urlencode(
            [(k, v) for k, v in query if v != ""])
    all_modalities = sorted({m for s in study_list.studies for m in s.modalities})
    return render_template(
        "studies.html", launch_id=launch_id, study_list=study_list, rows=rows, selected=selected,
        matching_count=len(matches), more=more, next_batch=min(more, DISPLAY_ROWS), show_more_url=show_more_url,
        selected_ids=[s.id for s in selected], viewer_url=_viewer_url(selected), missing_selection=missing,
        dropped_selection=len(requested_ids) - len(selected_ids), max_compare=MAX_COMPARE,
        patient_viewer_url=_patient_viewer_url(study_list), viewer=services.settings.viewer,
        modality=modality, q=text, all_modalities=all_modalities, show_banner=context.grant.need_patient_banner, patient_id=context.patient_id)


@bp.get("/healthz")
def healthz():
    """Liveness probe for load balancers (no PHI)."""
    return {"status": "ok"}
