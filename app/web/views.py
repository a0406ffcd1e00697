"""Web views: start page, SMART launch and callback, the study list with its viewer pane.

Routes
``GET /``                         start page (standalone launch: pick an EHR)
``GET /launch?iss=…[&launch=…]``  EHR launch (with ``launch``) or standalone launch (SMART 2.2 §Launch App)
``GET /launch/check/<launch_id>`` cookie check for launches inside an EHR iframe
``GET /callback?code=…&state=…``  OAuth2 redirect (SMART 2.2 §Obtain authorization code, response)
``GET /l/<launch_id>/``           the patient's studies; ``study`` (repeatable) selects what the viewer shows
``GET /l/<launch_id>/matches``    ids of the studies matching ``q`` / ``modality``, in ``sort`` order (the live filter)
``GET /l/<launch_id>/rows?after=n`` rows after the first ``n`` of the list as the page shows it (rendered; JSON)
``GET /l/<launch_id>/studies/<study_id>/thumbnail``  a study of the launch's list as a small JPEG (DICOMweb)
``GET /.well-known/jwks.json``    the app's public keys (``private_key_jwt`` registrations; RFC 7517 JWK Set)
``GET /l/<launch_id>/reports/<id>.pdf``  a report's PDF, read with the launch's token
``GET /healthz``                  liveness (answered before Flask: see ``app/__init__.py``)
``GET /readyz``, ``GET /metrics`` readiness and Prometheus metrics (:mod:`app.observability.endpoints`)
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, after_this_request, g, redirect, render_template, request, url_for

from ..fhir.study_list import StudyList
from ..launches.context import LaunchContext
from ..launches.errors import BrowserMismatch
from ..launches.state import ActiveLaunch, PendingLaunch, StoredLaunch
from ..launches.study_lists import load_study_list, report_pdf_bytes, settled
from ..observability import metrics
from ..smart.authorization import (build_authorization_request, check_response_issuer, exchange_code,
                                   refused_authorization)
from ..smart.errors import AuthorizationResponseMismatch
from ..smart.scopes import allows_search
from ..urls import origin_string
from .errors import ErrorPage, PageError, bad_launch_request, unknown_iss
from ..audit.events import MINOR_FAILURE
from .identity import (actor_for, audit_launch, audit_study_list, audit_viewer, header_context, show_in_header,
                       signed_in_user)
from .list_index import cached_page, is_default_view
from .row_html import row_html
from .presenter import DISPLAY_ROWS, RowsFragment, build_rows, build_study_list_page, study_for_report
from .search import StudyQuery
from .security import browser_binding, ensure_browser_binding, frame_launch, in_iframe, rotate_browser_binding
from .services import services

bp = Blueprint("views", __name__)

MAX_LAUNCH_LENGTH = 4096

bp.app_context_processor(header_context)
bp.add_app_template_global(row_html)  # templates/_study_rows.html: each row's HTML, kept with the row


@bp.get("/.well-known/jwks.json")
def jwks():
    """The app's public JWK Set (SMART 2.2 §Client Authentication: Asymmetric, ``jwks_uri`` registration)."""
    return services().app_jwks, 200, {"Cache-Control": "public, max-age=300",
                                      "Access-Control-Allow-Origin": "*"}


@bp.get("/")
def start():
    """Start page: the registered EHRs, each a standalone-launch link."""
    return render_template("start.html", ehrs=[e for e in services().settings.ehrs if e.standalone])


def relaunch_url(iss: str, launch: str | None = None) -> str:
    """The app's launch URL for ``iss`` (and an EHR ``launch`` id, when it can still be used)."""
    return url_for("views.launch") + "?" + urlencode({"iss": iss, **({"launch": launch} if launch else {})})


@bp.get("/launch")
def launch():
    """Start a launch: check ``iss``, discover, prepare PKCE and state, redirect to ``authorize``."""
    svc = services()
    iss = request.args.get("iss", "")
    launch_param = request.args.get("launch")
    if not iss:
        raise bad_launch_request("The launch request has no iss (FHIR server) parameter.",
                                 title="This launch is incomplete",
                                 action="Launch the app from the EHR, or choose an EHR on the app's start page.")
    ehr = svc.settings.find_ehr(iss)
    if ehr is None:
        raise unknown_iss()
    frame_launch(ehr)
    if launch_param is not None and not (0 < len(launch_param) <= MAX_LAUNCH_LENGTH):
        raise bad_launch_request("The launch parameter is empty or too long.")
    smart_config = svc.discovery.discover(iss)
    auth_request = build_authorization_request(ehr, smart_config, iss=iss, launch=launch_param,
                                               redirect_uri=ehr.redirect_uri, outbound=svc.outbound)
    binding, created = ensure_browser_binding()
    launch_id = svc.store.create_pending(binding, auth_request.state, PendingLaunch(
        iss=iss, launch=launch_param, code_verifier=auth_request.code_verifier, scope=auth_request.scope,
        token_endpoint=smart_config.token_endpoint, authorize_url=auth_request.url, redirect_uri=ehr.redirect_uri,
        issuer=smart_config.issuer, issuer_required=smart_config.authorization_response_iss_parameter_supported,
        nonce=auth_request.nonce, jwks_uri=smart_config.jwks_uri))
    if created and in_iframe():
        return redirect(url_for("views.launch_check", launch_id=launch_id), 303)
    return redirect(auth_request.url, 303)


@bp.get("/launch/check/<launch_id>")
def launch_check(launch_id: str):
    """Inside an EHR iframe: continue only if the browser kept the cookie, else offer a new window."""
    svc = services()
    try:
        pending = svc.store.check_pending(launch_id, browser_binding())
    except BrowserMismatch as exc:
        _frame_for(exc.pending.iss)
        return render_template("cookie_blocked.html",
                               relaunch_url=relaunch_url(exc.pending.iss, exc.pending.launch)), 409
    _frame_for(pending.state.iss)
    return redirect(pending.state.authorize_url, 303)


def _frame_for(iss: str) -> None:
    """Frame this response only for the EHR registered for ``iss`` (when it still is)."""
    ehr = services().settings.find_ehr(iss)
    if ehr is not None:
        frame_launch(ehr)


@bp.get("/callback")
@bp.get("/callback/<registration>")
def callback(registration: str | None = None):
    """OAuth2 redirect: claim ``state`` for this browser, check whose answer it is, exchange the code, keep the context.

    ``registration``: the last segment of a registration's own redirect URI
    (``ehrs[].redirect_uri``), which must be the one this launch was sent with.
    """
    svc = services()
    try:
        claimed = svc.store.claim(request.args.get("state") or "", browser_binding())
    except BrowserMismatch as exc:
        _frame_for(exc.pending.iss)
        raise
    _frame_for(claimed.state.iss)
    try:
        active = _complete_authorization(claimed.state)
    except BaseException as exc:
        svc.store.discard(claimed.id)  # the one place a failed callback ends
        audit_launch(claimed.state.iss, None, exc)
        raise
    audit_launch(claimed.state.iss, active)
    svc.store.activate(claimed.id, active, svc.settings.launch_lifetime_seconds,
                       new_browser_id=rotate_browser_binding())
    reports = active.grant.context_references("DiagnosticReport")
    query = {"study": active.grant.preselected_study_id} if active.grant.preselected_study_id else \
        {"report": reports[0].id} if reports else {}  # fhirContext: the study that report is about
    return redirect(url_for("views.studies", launch_id=claimed.id, **query), 303)


def _complete_authorization(pending: PendingLaunch) -> ActiveLaunch:
    """The callback after its state was claimed: whose answer it is, the code exchange, the granted scope.

    The answer must come back to this launch's redirect URI and name the
    authorization server the browser was sent to (RFC 9207, RFC 9700 §4.4.2),
    before anything else of it is believed.
    """
    svc = services()
    if urlsplit(pending.redirect_uri).path != request.path:
        raise AuthorizationResponseMismatch("redirect-uri-mismatch")
    check_response_issuer(request.args.get("iss"), expected_issuer=pending.issuer, required=pending.issuer_required,
                          fallback_issuers=(pending.iss, pending.iss.rstrip("/"), origin_string(pending.authorize_url)))
    if request.args.get("error"):
        raise refused_authorization(request.args["error"], request.args.get("error_description"))
    code = request.args.get("code")
    if not code:
        raise PageError(ErrorPage(400, "Could not verify this launch, please relaunch",
                                  "The EHR's answer carried no authorization code.",
                                  "Close this window and launch the app again from the patient's chart."))
    ehr = svc.settings.find_ehr(pending.iss)
    if ehr is None:
        raise unknown_iss()
    grant = exchange_code(ehr, pending.token_endpoint, code=code, code_verifier=pending.code_verifier,
                          redirect_uri=pending.redirect_uri, requested=pending.scope, outbound=svc.outbound)
    if not allows_search(grant.scope, "ImagingStudy"):
        raise PageError(ErrorPage(
            403, "The EHR did not grant access to imaging studies",
            "The granted scope does not include searching ImagingStudy.",
            "Ask your EHR administrator to allow this app to read ImagingStudy, then launch it again."))
    return ActiveLaunch(iss=pending.iss, launch=pending.launch, patient=grant.patient, grant=grant,
                        token_endpoint=pending.token_endpoint, user=signed_in_user(pending, ehr, grant))


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(request.args.get(name, default)), low), high)
    except ValueError:
        return default


def _launch_list(launch_id: str) -> tuple[LaunchContext, StudyList]:
    """This browser's launch and its study list; a freshly fetched list is kept after the response is sent.

    A list with more pages is sent after its first page: the background loader keeps it and each further
    page (:func:`~app.launches.study_lists.load_study_list`); the page polls :func:`rows`.
    """
    svc = services()
    binding = browser_binding()
    context = LaunchContext.load(svc.store, svc.settings, svc.outbound, launch_id, binding)
    frame_launch(context.ehr)

    def reopen() -> LaunchContext:
        return LaunchContext.load(svc.store, svc.settings, svc.outbound, launch_id, binding)

    study_list, fetched = load_study_list(context, svc.executor, force=request.args.get("refresh") == "1",
                                          images=svc.images, bulkheads=svc.bulkheads, reopen=reopen,
                                          background=svc.loaders)
    show_in_header(context.state)
    if fetched and study_list.loading is None:
        metrics.STUDIES_PER_LIST.observe(len(study_list.studies))

        @after_this_request
        def _keep_list(response):
            response.call_on_close(lambda: context.keep_study_list(study_list))
            return response
    return context, study_list


@bp.get("/l/<launch_id>/")
def studies(launch_id: str):
    """The launch patient's studies, and the selected ones in the viewer pane."""
    context, study_list = _launch_list(launch_id)
    page = build_study_list_page(
        launch_id=launch_id, patient_id=context.state.patient, study_list=study_list,
        show_banner=context.state.grant.need_patient_banner, viewer=services().settings.viewer,
        query=_query(),
        requested_ids=request.args.getlist("study") or [i for i in [study_for_report(
            study_list, request.args.get("report"))] if i],
        show=_int_arg("show", DISPLAY_ROWS, DISPLAY_ROWS, 100_000),
        page_url=url_for("views.studies", launch_id=launch_id), show_all=request.args.get("all") == "1")
    fhir = services().settings.fhir
    audit_study_list(context.state, context.ehr, len(study_list.studies),
                     urlencode({"patient": context.state.patient, "_sort": "-started", "_count": fhir.page_size}))
    if page.viewer_url:
        audit_viewer(context.state, context.ehr, [s.study_instance_uid for s in page.selected if s.study_instance_uid])
    # the kept default view goes out compressed to a browser that accepts it (RFC 9110 §12.5.3)
    compress = is_default_view(page, DISPLAY_ROWS) and request.accept_encodings["gzip"] > 0
    body = cached_page(page, lambda: render_template("studies.html", page=page), default_rows=DISPLAY_ROWS,
                       header=(g.get("signed_in_user"), g.get("launch_encounter"), request.query_string),
                       gzip=compress)
    return Response(body, content_type="text/html; charset=utf-8",
                    headers={"Vary": "Accept-Encoding", **({"Content-Encoding": "gzip"} if compress else {})})


def _query() -> StudyQuery:
    """The request's filter and order (``modality``, ``q``, ``sort``)."""
    return StudyQuery.from_args(request.args.get("modality"), request.args.get("q"), request.args.get("sort"))


@bp.get("/l/<launch_id>/matches")
def matches(launch_id: str):
    """``{"ids": [...], "count": n, "loading": bool, "loaded": m}``: the studies of this launch's list matching
    ``q`` and ``modality``, in ``sort`` order; while older pages are loading, among the ``loaded`` so far."""
    _, study_list = _launch_list(launch_id)
    selected = _query().select(study_list.studies)
    return {"ids": [s.id for s in selected], "count": len(selected), "loading": study_list.loading is not None,
            "loaded": len(study_list.studies)}


MAX_ROWS_AFTER = 100_000


@bp.get("/l/<launch_id>/rows")
def rows(launch_id: str):
    """Rows of this launch's list after the first ``after`` (as the page orders and filters it: ``sort``,
    ``modality``, ``q``), at most ``limit`` (0–200, default 200), rendered with the page's own row template.

    JSON: ``{"load", "same_load", "loading", "loaded", "matching", "after", "prefix_changed", "ids", "html",
    "more", "incomplete"}``. ``load`` names the fetch that built the stored list; ``same_load`` is false when it
    is not the ``load`` the page was rendered from (not written yet, or replaced: the page waits, then reloads).
    ``last``: the id of the page's last row; when the row at ``after - 1`` is another one (a later page sorted
    into the rows shown: an EHR that ignores ``_sort``, or the oldest-first order while loading), the answer
    holds rows from the first (``after`` 0, ``prefix_changed``) and the page replaces its rows.

    Rows are rendered HTML inside JSON rather than data for the browser to lay out: one row template and one
    presenter for the page and for appended rows (times, ages, priors, viewer URLs, escaping), and the
    counts and state the page needs beside them. Reads the stored list only (never asks the
    EHR): the background loader writes it page by page. ``after`` must be 0–100,000 (else 400); past the end
    no rows. Another browser's or an unknown launch: 404, like the list.
    """
    svc = services()
    context = LaunchContext.load(svc.store, svc.settings, svc.outbound, launch_id, browser_binding())
    frame_launch(context.ehr)
    try:
        after = int(request.args.get("after", ""))
        limit = int(request.args.get("limit", DISPLAY_ROWS))
    except ValueError:
        after = limit = -1
    if not (0 <= after <= MAX_ROWS_AFTER and 0 <= limit <= DISPLAY_ROWS):
        return {"error": "after must be 0-100000 and limit 0-200"}, 400
    stored = context.state.study_list
    study_list = settled(stored, svc.settings.fhir) if stored is not None else StudyList(studies=[], banner=None)
    query = _query()
    selected = query.select(study_list.studies)
    last = request.args.get("last")
    prefix_changed = bool(after and last) and (after > len(selected) or selected[after - 1].id != last)
    if prefix_changed:  # a later page sorted into the rows already shown: the page replaces its rows
        after, limit = 0, min(DISPLAY_ROWS, after + limit)
    page_url = url_for("views.studies", launch_id=launch_id)
    shown = build_rows(study_list, selected, after, limit, viewer=svc.settings.viewer, page_url=page_url, query=query)
    html = render_template("_study_rows.html", page=RowsFragment(launch_id=launch_id, rows=shown),
                           viewer=svc.settings.viewer)
    return {"load": study_list.load_id, "same_load": stored is not None and study_list.load_id == request.args.get("load"),
            "loading": study_list.loading is not None, "loaded": len(study_list.studies), "matching": len(selected),
            "after": after, "prefix_changed": prefix_changed, "ids": [r.study.id for r in shown], "html": html,
            "more": max(0, len(selected) - after - len(shown)), "incomplete": study_list.incomplete}


@bp.get("/l/<launch_id>/reports/<report_id>.pdf")
def report_pdf(launch_id: str, report_id: str):
    """A report's PDF (``presentedForm``), read afresh with this launch's token; only a report of the list."""
    context, study_list = _launch_list(launch_id)
    summary = next((r for r in study_list.reports if r.id == report_id and r.pdf_index is not None), None)
    if summary is None:
        raise PageError(ErrorPage(404, "Report not found", "This report is not among the patient's reports.",
                                  "Go back to the study list."))
    pdf = report_pdf_bytes(context, report_id, summary.pdf_index)
    svc = services()
    if svc.audit.enabled:
        svc.audit.record(svc.audit_events.report_read(actor_for(context.state.iss, context.ehr, context.state.user),
                                                      context.state.patient, f"DiagnosticReport/{report_id}",
                                                      **({} if pdf is not None else {"outcome": MINOR_FAILURE})))
    if pdf is None:
        raise PageError(ErrorPage(502, "The report could not be shown", "The EHR's PDF could not be read.",
                                  "Try again, or open the report in the EHR."))
    return Response(pdf, content_type="application/pdf", headers={
        "Content-Disposition": 'inline; filename="report.pdf"'})


@bp.get("/l/<launch_id>/studies/<study_id>/thumbnail")
def thumbnail(launch_id: str, study_id: str):
    """A thumbnail of a study in this launch's list (fetched server-side, :mod:`app.launches.images`), ``image/jpeg``
    with ``Cache-Control: private, max-age=<dicomweb.thumbnail_ttl_seconds>``; 404 when there is none."""
    svc = services()
    context = LaunchContext.load(svc.store, svc.settings, svc.outbound, launch_id, browser_binding())
    study_list = context.state.study_list or _launch_list(launch_id)[1]
    study = study_list.find(study_id)
    image = svc.images.thumbnail(context, study) if study is not None else None
    if image is None:
        return "", 404, {"Content-Type": "text/plain"}
    if svc.audit.enabled:
        svc.audit.record(svc.audit_events.thumbnail_read(actor_for(context.state.iss, context.ehr, context.state.user),
                                                         context.state.patient, study.study_instance_uid))
    g.cache_control = f"private, max-age={svc.images.ttl(context)}"
    return image.content, 200, {"Content-Type": image.media_type}


def relaunch_url_for(exc: BaseException) -> str | None:
    """A relaunch link for a failed callback: only a standalone launch can be restarted (an EHR launch id is used up)."""
    if isinstance(exc, BrowserMismatch) and not exc.pending.launch:
        return relaunch_url(exc.pending.iss)
    return None
