"""User-facing failures: each carries an HTTP status, what failed and what to do.

Views raise these; :func:`register_error_handlers` renders them as an HTML
page with the right status and no traceback. Messages never contain tokens;
upstream text is only ever rendered escaped (Jinja autoescape).
"""

from __future__ import annotations

import logging

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class AppError(Exception):
    """A failure shown to the clinician.

    ``status``: HTTP status of the error page; ``title``: what failed, one line;
    ``detail``: more about it (may quote upstream text, escaped on render);
    ``action``: what to do next; ``relaunch_url``: optional link to start again
    in a new top-level window.
    """

    status = 500
    title = "Something went wrong"
    action = "Close the app and launch it again from the patient's chart."

    def __init__(self, detail: str = "", *, title: str | None = None, action: str | None = None,
                 status: int | None = None, relaunch_url: str | None = None):
        super().__init__(title or self.title)
        self.detail = detail
        if title:
            self.title = title
        if action:
            self.action = action
        if status:
            self.status = status
        self.relaunch_url = relaunch_url


class UnknownIss(AppError):
    """The launch names a FHIR server this app is not registered with (no request is sent to it)."""
    status = 400
    title = "This app is not registered with that EHR"
    action = "Ask your EHR administrator to register the app for this FHIR server, or launch it from a registered EHR."


class DiscoveryFailed(AppError):
    """Neither ``.well-known/smart-configuration`` nor the CapabilityStatement gave OAuth endpoints."""
    status = 502
    title = "SMART discovery failed for this server"
    action = "The EHR's FHIR server did not say where to sign in. Try again later or contact your EHR administrator."


class LaunchNotVerified(AppError):
    """The OAuth callback cannot be tied to a launch started in this browser (state, cookie)."""
    status = 400
    title = "Could not verify this launch, please relaunch"
    action = "Close this window and launch the app again from the patient's chart."


class AccessDenied(AppError):
    """The EHR answered the authorization request with ``error=access_denied``."""
    status = 403
    title = "Access was denied in the EHR"
    action = "The app needs your approval in the EHR to show imaging. Launch it again and allow access."


class AuthorizationFailed(AppError):
    """The EHR's authorization or token endpoint answered with an OAuth2 error or garbage."""
    status = 502
    title = "The EHR did not complete the sign-in"
    action = "Launch the app again from the patient's chart. If it keeps failing, contact your EHR administrator."


class NoPatientContext(AppError):
    """The token response carries no ``patient``: the app was not launched in a patient's context."""
    status = 400
    title = "This launch carried no patient"
    action = "Open a patient's chart in the EHR and launch the app from there."


class ImagingScopeNotGranted(AppError):
    """The granted scope (or the FHIR server) does not allow searching ImagingStudy."""
    status = 403
    title = "The EHR did not grant access to imaging studies"
    action = "Ask your EHR administrator to allow this app to read ImagingStudy, then launch it again."


class SessionExpired(AppError):
    """The access token expired and could not be refreshed."""
    status = 401
    title = "Your session has expired"
    action = "Relaunch the app from the EHR."


class LaunchNotFound(AppError):
    """The launch id is unknown, expired, or belongs to another browser: nothing is revealed."""
    status = 404
    title = "This launch is not available"
    action = "It may have expired. Relaunch the app from the patient's chart."


class UpstreamError(AppError):
    """The FHIR server failed: HTTP error, wrong content type, unreadable body, timeout, refused connection."""
    status = 502
    title = "The EHR's FHIR server could not be read"
    action = "Try again in a moment. If it keeps failing, contact your EHR administrator."


class NotFoundInLaunch(AppError):
    """A study id or UID asked for is not in this launch's study list (never passed on to the viewer)."""
    status = 404
    title = "That study is not in this patient's list"
    action = "Choose a study from the list."


def register_error_handlers(app: Flask) -> None:
    """Render :class:`AppError`, HTTP errors and unexpected exceptions as the app's error page."""

    @app.errorhandler(AppError)
    def _app_error(error: AppError):
        return render_template("error.html", error=error), error.status

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        page = AppError(title=error.name, detail=error.description or "", status=error.code or 500,
                        action="Go back to the patient's chart and try again.")
        return render_template("error.html", error=page), page.status

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unexpected error")
        page = AppError(detail="An unexpected error occurred in the imaging app.")
        return render_template("error.html", error=page), 500
