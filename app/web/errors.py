"""The one place where failures become what a clinician reads: title, detail, action and HTTP status.

Low layers raise protocol facts (:mod:`app.smart.errors`, :mod:`app.fhir.errors`,
:mod:`app.launches.errors`, transport facts of :mod:`app.outbound.errors`); views raise
:class:`PageError` for problems with the request itself. :func:`describe` maps
each to an :class:`ErrorPage`; :func:`register_error_handlers` renders it with
the right status and no traceback. Pages never contain tokens; upstream text
is only ever rendered escaped (Jinja autoescape).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from flask import Flask, render_template
from flask.globals import request_ctx
from markupsafe import escape
from werkzeug.exceptions import HTTPException, SecurityError

from ..fhir.errors import FhirBadContent, FhirError, FhirHttpError, FhirRedirect
from ..outbound import (InvalidJson, MalformedResponse, OutboundError, RedirectRefused, RefusedTarget,
                        ResponseTooLarge, UnexpectedContentType, UpstreamTimeout, UpstreamUnreachable)
from ..launches.errors import (AuthorizationExpired, BrowserMismatch, LaunchNotFound, RegistrationRemoved,
                               StateNotRecognised, StoreUnavailable, TooManyPendingLaunches, EhrBusy)
from ..smart.id_token import InvalidIdToken
from ..smart.errors import (AuthorizationRefused, AuthorizationResponseMismatch, DiscoveryFailed,
                            InvalidTokenResponse, NoPatientContext, TokenEndpointError)

log = logging.getLogger(__name__)

RELAUNCH_FROM_CHART = "Close the app and launch it again from the patient's chart."
RETRY_LATER = "Try again in a moment. If it keeps failing, contact your EHR administrator."
BROWSER_MISMATCH_DETAIL = "This browser did not start the launch, or it blocked the app's cookie."
SIGN_IN_REPLACED_DETAIL = ("A newer sign-in was started in this browser at about the same time (for example "
                           "\u201cOpen in a new window\u201d clicked twice), and it replaced this one.")
SIGN_IN_REPLACED_ACTION = "Use the window of the newer sign-in, or close this window and launch the app again."


@dataclass(frozen=True)
class ErrorPage:
    """What the error page shows: ``status``, ``title`` (one line), ``detail`` (may quote upstream text),
    ``action`` (what to do next), ``relaunch_url`` (a link that starts the launch again, when one can work),
    ``headers`` (extra response headers, e.g. ``Retry-After``); ``ehr_name`` / ``patient_label``: whose launch
    failed (:mod:`app.web.error_context`, only this browser's own launch); ``relaunch_from_ehr``: an EHR launch,
    which only the EHR can start again (no button); ``relaunch_new_window``: the button opens a new window
    (a frame that lost its cookie)."""

    status: int
    title: str
    detail: str = ""
    action: str = RELAUNCH_FROM_CHART
    relaunch_url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    ehr_name: str | None = None
    patient_label: str | None = None
    relaunch_from_ehr: bool = False
    relaunch_new_window: bool = False


class PageError(Exception):
    """A problem with the request itself, found by a view; carries its page."""

    def __init__(self, page: ErrorPage):
        super().__init__(page.title)
        self.page = page


def bad_launch_request(detail: str, title: str = "This launch is malformed",
                       action: str = RELAUNCH_FROM_CHART) -> PageError:
    """A 400 for a launch request that cannot be started."""
    return PageError(ErrorPage(400, title, detail, action))


def unknown_iss() -> PageError:
    """The launch names a FHIR server this app is not registered with (no request is sent to it)."""
    return PageError(ErrorPage(
        400, "This app is not registered with that EHR",
        "The launch named a FHIR server that is not in this app's registration.",
        "Ask your EHR administrator to register the app for this FHIR server, or launch it from a registered EHR."))


def _with_outcome(text: str, outcome: str) -> str:
    return f"{text} ({outcome})" if outcome else text


_INTERACTIONS = {("ImagingStudy", "search"): "the imaging study search", ("Patient", "read"): "the patient read"}


def _fhir_what(exc: FhirError) -> str:
    return _INTERACTIONS.get((exc.resource_type, exc.interaction), f"the {exc.resource_type} {exc.interaction}")


def _fhir_page(exc: FhirError) -> ErrorPage:
    what = _fhir_what(exc)
    if isinstance(exc, FhirHttpError):
        if exc.status == 403 and exc.resource_type == "ImagingStudy":
            return ErrorPage(403, "The EHR did not grant access to imaging studies",
                             f"The FHIR server refused {what} (HTTP 403{': ' + exc.outcome if exc.outcome else ''}).",
                             "Ask your EHR administrator to allow this app to read ImagingStudy, then launch it again.")
        return ErrorPage(502, "The EHR's FHIR server could not be read",
                         _with_outcome(f"The FHIR server answered HTTP {exc.status} for {what}", exc.outcome) + ".",
                         RETRY_LATER)
    if isinstance(exc, FhirRedirect):
        return ErrorPage(502, "The EHR's FHIR server could not be read",
                         f"The FHIR server answered HTTP {exc.status} (a redirect) for {what}; "
                         "the app does not send its token to redirected locations.", RETRY_LATER)
    if isinstance(exc, FhirBadContent):
        detail = {
            "content-type": f"The FHIR server answered {what} with an unexpected content type ({exc.media_type}) "
                            "instead of FHIR JSON.",
            "invalid-json": f"The FHIR server's answer to {what} was not valid JSON.",
            "not-a-resource": f"The FHIR server's answer to {what} is not a FHIR resource.",
            "wrong-resource-type": _with_outcome(f"The FHIR server answered {what} with a {exc.found or 'resource'} "
                                                 "of the wrong type", exc.outcome) + ".",
        }.get(exc.problem, f"The FHIR server's answer to {what} could not be used.")
        return ErrorPage(502, "The EHR's FHIR server sent an unexpected answer", detail, RETRY_LATER)
    return ErrorPage(502, "The EHR's FHIR server could not be read", f"{what} failed.", RETRY_LATER)


_DISCOVERY = {
    "timeout": ("The EHR's FHIR server could not be reached (no answer in time).",
                "Check that the EHR is up, then launch the app again."),
    "unreachable": ("The EHR's FHIR server could not be reached (connection failed).",
                    "Check that the EHR is up, then launch the app again."),
    "insecure-endpoint": ("The server's authorization or token endpoint is not https; "
                          "the app does not send codes or tokens in clear.",
                          "Contact your EHR administrator."),
}


def _discovery_page(exc: DiscoveryFailed) -> ErrorPage:
    detail, action = _DISCOVERY.get(exc.reason, (
        "Neither .well-known/smart-configuration nor the CapabilityStatement (metadata) named an "
        "authorization and a token endpoint.",
        "The EHR's FHIR server did not say where to sign in. Try again later or contact your EHR administrator."))
    return ErrorPage(502, "SMART discovery failed for this server", detail, action)


_TRANSPORT_WHAT = {"token": "The token endpoint", "fhir": "The FHIR server", "discovery": "The EHR's FHIR server"}


def _transport_page(exc: OutboundError) -> ErrorPage:
    who = _TRANSPORT_WHAT.get(exc.kind or "", "The EHR")
    if isinstance(exc, UpstreamTimeout):
        return ErrorPage(504, "The EHR did not answer in time", f"{who} did not answer in time.", RETRY_LATER)
    if isinstance(exc, UpstreamUnreachable):
        return ErrorPage(502, "The EHR could not be reached",
                         f"Could not connect: {who.lower()} could not be reached ({exc.reason}).", RETRY_LATER)
    if isinstance(exc, RedirectRefused):
        return ErrorPage(502, "The EHR sent an answer the app does not follow",
                         f"{who} answered HTTP {exc.status} (a redirect); the app does not send codes or tokens "
                         "to redirected locations.", "Contact your EHR administrator.")
    if isinstance(exc, ResponseTooLarge):
        return ErrorPage(502, "The EHR sent more than the app accepts",
                         f"{who} answered with more than {exc.limit_bytes // 1024} KiB.", "Contact your EHR administrator.")
    if isinstance(exc, RefusedTarget):
        return ErrorPage(502, "The EHR named an address the app does not use",
                         f"{who} is at an address the app refuses ({exc.reason}); nothing was sent there.",
                         "Contact your EHR administrator.")
    if isinstance(exc, (InvalidJson, UnexpectedContentType, MalformedResponse)):
        return ErrorPage(502, "The EHR sent an unexpected answer", f"{who} sent an answer that is not usable JSON.",
                         RETRY_LATER)
    return ErrorPage(502, "The EHR could not be reached", f"{who} could not be used.", RETRY_LATER)


def _token_page(exc: TokenEndpointError) -> ErrorPage:
    if exc.error:
        detail = f"During the {exc.during}, the token endpoint answered: {exc.error}" + \
            (f": {exc.description}" if exc.description else "")
    elif exc.status and 300 <= exc.status < 400:
        detail = (f"The token endpoint answered HTTP {exc.status} (a redirect) during the {exc.during}; "
                  "the app does not send codes or tokens to redirected locations.")
    else:
        detail = f"The token endpoint answered HTTP {exc.status} during the {exc.during}."
    if exc.error == "invalid_client":
        return ErrorPage(502, "The EHR did not accept this app's credentials", detail,
                         "Tell your EHR administrator: the app's client registration (its secret, or the public "
                         "keys it publishes at /.well-known/jwks.json) does not match what the EHR holds.")
    return ErrorPage(502, "The EHR did not complete the sign-in", detail,
                     "Launch the app again from the patient's chart. If it keeps failing, contact your EHR administrator.")


_MISMATCH = {
    "issuer-mismatch": "The sign-in answer names another authorization server than the one this launch was sent to.",
    "issuer-missing": "The sign-in answer does not name its authorization server, which this EHR promised to do.",
    "redirect-uri-mismatch": "The sign-in answer came back to another EHR's address of this app.",
}

_ID_TOKEN = {
    "missing": "The EHR granted an OpenID Connect sign-in but sent no identity token.",
    "malformed": "The identity token from the EHR is not a well-formed signed token.",
    "alg-not-allowed": "The identity token is not signed with an accepted algorithm (unsigned or HMAC tokens "
                       "are refused).",
    "unknown-kid": "The identity token is signed with a key the EHR does not publish.",
    "bad-signature": "The identity token's signature does not verify with the EHR's published key.",
    "keys-unavailable": "The EHR's signing keys (JWKS) could not be fetched.",
    "wrong-iss": "The identity token was issued by another server than this EHR's.",
    "wrong-aud": "The identity token was issued for another application.",
    "expired": "The identity token has expired.",
    "issued-in-future": "The identity token is dated in the future.",
    "nonce-mismatch": "The identity token does not belong to this sign-in (nonce mismatch).",
    "missing-claim": "The identity token lacks a required claim.",
}

_EXPIRED = {
    "no-refresh-token": "The access token has expired and the EHR granted no refresh token.",
    "refresh-refused": "The EHR did not renew the session.",
    "renewed-token-refused": "The FHIR server refused the renewed token.",
}


def describe(exc: BaseException) -> ErrorPage:
    """The page for ``exc``; an unexpected exception gives a generic 500 page (and is logged by the caller)."""
    if isinstance(exc, PageError):
        return exc.page
    if isinstance(exc, FhirError):
        return _fhir_page(exc)
    if isinstance(exc, OutboundError):
        return _transport_page(exc)
    if isinstance(exc, DiscoveryFailed):
        return _discovery_page(exc)
    if isinstance(exc, AuthorizationRefused):
        detail = f"{exc.error}: {exc.description}" if exc.description else exc.error
        if exc.error == "access_denied":
            return ErrorPage(403, "Access was denied in the EHR", detail,
                             "The app needs your approval in the EHR to show imaging. Launch it again and allow access.")
        return ErrorPage(502, "The EHR refused the sign-in request", detail,
                         "Launch the app again from the patient's chart. If it keeps failing, contact your EHR administrator.")
    if isinstance(exc, TokenEndpointError):
        return _token_page(exc)
    if isinstance(exc, InvalidTokenResponse):
        return ErrorPage(502, "The EHR did not complete the sign-in",
                         f"The token response of the {exc.during} cannot be used: {exc.problem}.",
                         "Launch the app again from the patient's chart. If it keeps failing, contact your EHR administrator.")
    if isinstance(exc, InvalidIdToken):
        return ErrorPage(502, "The EHR's sign-in could not be verified", _ID_TOKEN.get(exc.problem, ""),
                         "Close this window and launch the app again from the patient's chart. If it happens again, "
                         "tell your EHR administrator: the user's identity token was refused.")
    if isinstance(exc, AuthorizationResponseMismatch):
        return ErrorPage(400, "Could not verify this launch, please relaunch", _MISMATCH.get(exc.problem, ""),
                         "Close this window and launch the app again from the patient's chart. If it happens again, "
                         "tell your EHR administrator: the sign-in answer did not come from the EHR it was sent to.")
    if isinstance(exc, NoPatientContext):
        return ErrorPage(400, "This launch carried no patient", "The EHR's token response has no patient.",
                         "Open a patient's chart in the EHR and launch the app from there.")
    if isinstance(exc, (LaunchNotFound, RegistrationRemoved)):
        return ErrorPage(404, "This launch is not available", "",
                         "It may have expired. Relaunch the app from the patient's chart.")
    if isinstance(exc, StateNotRecognised):
        return ErrorPage(400, "Could not verify this launch, please relaunch",
                         "The state is missing, unknown, already used, or expired.",
                         "Close this window and launch the app again from the patient's chart.")
    if isinstance(exc, BrowserMismatch):
        return ErrorPage(400, "Could not verify this launch, please relaunch", BROWSER_MISMATCH_DETAIL,
                         "Close this window and launch the app again from the patient's chart.",
                         relaunch_new_window=True)
    if isinstance(exc, TooManyPendingLaunches):
        return ErrorPage(429, "Too many sign-ins in progress",
                         "This browser has started more launches than the app holds at once.",
                         f"Finish or close the other sign-in windows, then try again in {exc.retry_after} seconds.",
                         headers=(("Retry-After", str(exc.retry_after)),))
    if isinstance(exc, EhrBusy):
        return ErrorPage(503, "The EHR is answering slowly",
                         "The app is already waiting for this EHR on as many requests as it allows.",
                         f"Try again in {exc.retry_after} seconds. If it keeps happening, tell your EHR administrator.",
                         headers=(("Retry-After", str(exc.retry_after)),))
    if isinstance(exc, StoreUnavailable):
        log.error("launch store unavailable: %s", exc.problem)
        return ErrorPage(503, "The imaging app cannot reach its launch store",
                         "The app's server-side store of launches is not usable right now.",
                         "Try again in a moment. If it keeps failing, tell the app's administrator (see the server log).",
                         headers=(("Retry-After", "30"),))
    if isinstance(exc, AuthorizationExpired):
        return ErrorPage(401, "Your session has expired", _EXPIRED.get(exc.reason, ""), "Relaunch the app from the EHR.")
    return ErrorPage(500, "Something went wrong", "An unexpected error occurred in the imaging app.")


def _plain(page: ErrorPage):
    """The page without the template: for requests refused before routing (untrusted Host), or a failing template."""
    body = (f"<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{escape(page.title)}</title>"
            f"<h1>{escape(page.title)}</h1><p>{escape(page.detail)}</p><p>{escape(page.action)}</p>"
            f"<p>Status {page.status}</p></html>")
    return body, page.status, {"Content-Type": "text/html; charset=utf-8", **dict(page.headers)}


def _render(page: ErrorPage):
    if request_ctx.url_adapter is None:  # routing never started (e.g. a Host not in TRUSTED_HOSTS)
        return _plain(page)
    try:
        return render_template("error.html", error=page), page.status, dict(page.headers)
    except Exception:  # the error path itself must not fail
        log.exception("error page could not be rendered")
        return _plain(page)


def with_launch(page: ErrorPage, launch, *, cookie_sent: bool = False) -> ErrorPage:
    """``page`` naming ``launch`` (an :class:`~app.web.error_context.ErrorLaunch`, or ``None``).

    The EHR and patient are named; a standalone launch gets its relaunch URL; an EHR
    launch says plainly to relaunch from the EHR (its launch id is used up, no button).
    ``cookie_sent``: for a browser mismatch, the browser did send a binding cookie, only
    not this launch's: another sign-in of the same browser replaced it (two quick clicks).
    """
    if page.detail == BROWSER_MISMATCH_DETAIL and cookie_sent:
        page = replace(page, detail=SIGN_IN_REPLACED_DETAIL, action=SIGN_IN_REPLACED_ACTION)
    if launch is None:
        return page
    page = replace(page, ehr_name=launch.ehr_name, patient_label=launch.patient_label)
    if launch.ehr_launch:
        where = f"{launch.patient_label}\u2019s chart" if launch.patient_label else "the patient\u2019s chart"
        return replace(page, relaunch_url=None, relaunch_from_ehr=True,
                       action=f"{page.action} To relaunch, open {where} in {launch.ehr_name} and start the app "
                              "there (a launch from the EHR cannot be restarted from this page).")
    if launch.relaunch_url and page.relaunch_url is None:
        page = replace(page, relaunch_url=launch.relaunch_url)
    return page


def register_error_handlers(app: Flask, relaunch_url_for=None, on_error=None, launch_of=None,
                            cookie_sent=None) -> None:
    """Render every failure as the app's error page.

    ``relaunch_url_for(exc) -> str | None`` adds a relaunch link where one can work;
    ``on_error(exc, page)`` is told of each failure rendered (metrics);
    ``launch_of(exc) -> ErrorLaunch | None`` names the failing request's launch (:func:`with_launch`);
    ``cookie_sent() -> bool``: the request carried a launch-binding cookie.
    """

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if isinstance(error, SecurityError):  # werkzeug's text would quote the Host header
            return _render(ErrorPage(400, "Bad request", "This address is not one the imaging app answers to.",
                                     "Open the app from the EHR."))
        return _render(ErrorPage(error.code or 500, error.name, error.description or "",
                                 "Go back to the patient's chart and try again."))

    @app.errorhandler(Exception)
    def _failure(error: Exception):
        page = describe(error)
        if page.status == 500:
            log.exception("unexpected error")
        if on_error is not None:
            on_error(error, page)
        if relaunch_url_for is not None and page.relaunch_url is None:
            url = relaunch_url_for(error)
            if url:
                page = replace(page, relaunch_url=url)
        page = with_launch(page, launch_of(error) if launch_of is not None else None,
                           cookie_sent=bool(cookie_sent()) if cookie_sent is not None else False)
        return _render(page)
