"""Browser-side security: the launch-binding cookie and the response headers.

* The browser holds one opaque id in Flask's signed session cookie
  (``HttpOnly``, ``Secure``, ``SameSite=None``, ``Partitioned``) so that the
  app works as a cross-site iframe inside the EHR (CHIPS); every launch record
  is bound to it. Tokens never leave the server.
* ``Content-Security-Policy``: scripts and styles from the app only,
  ``frame-src`` the IID viewer's origin, ``frame-ancestors`` the EHR origins
  of the launch's registration (no ``X-Frame-Options``, which cannot list several).
* The binding id is rotated at each successful callback (no session fixation).
* ``Referrer-Policy: no-referrer``: launch ids in page URLs never reach the
  viewer or the EHR; pages with patient data are ``Cache-Control: no-store``.
"""

from __future__ import annotations

import secrets

from flask import Flask, Response, g, request, session

from ..config import EhrRegistration, Settings
from ..urls import origin_string

BROWSER_BINDING_KEY = "browser_binding"  # the session-cookie key holding this browser's launch-binding id
SESSION_COOKIE_NAME = "imaging_app_session"


def configure_session_cookie(app: Flask, settings: Settings) -> None:
    """Flask session cookie flags for a cross-site iframe (SMART App Launch in an EHR frame)."""
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="None",
        SESSION_COOKIE_PARTITIONED=True,
        PERMANENT_SESSION_LIFETIME=settings.launch_lifetime_seconds,
        SESSION_REFRESH_EACH_REQUEST=False,  # the cookie carries a fixed browser id: no re-signing per page
    )


def browser_binding() -> str | None:
    """This browser's binding id from the session cookie, or ``None`` when the cookie was not sent."""
    value = session.get(BROWSER_BINDING_KEY)
    return value if isinstance(value, str) else None


def ensure_browser_binding() -> tuple[str, bool]:
    """``(id, created)``: the binding id, creating it (and so setting the cookie) when absent."""
    existing = browser_binding()
    if existing:
        return existing, False
    session.permanent = True
    session[BROWSER_BINDING_KEY] = secrets.token_urlsafe(32)
    return session[BROWSER_BINDING_KEY], True


def rotate_browser_binding() -> str:
    """A new binding id in the cookie (after a successful sign-in), returned for the store to rebind to."""
    session.permanent = True
    session[BROWSER_BINDING_KEY] = secrets.token_urlsafe(32)
    return session[BROWSER_BINDING_KEY]


def frame_launch(ehr: EhrRegistration) -> None:
    """Let only ``ehr``'s origins frame this response (a launch's pages, SMART App Launch in an EHR frame)."""
    g.frame_ancestors = ehr.frame_origins


def in_iframe() -> bool:
    """True when the browser says this navigation loads a frame (Fetch Metadata ``Sec-Fetch-Dest``)."""
    return request.headers.get("Sec-Fetch-Dest", "").lower() in ("iframe", "frame")


def content_security_policy(settings: Settings, frame_ancestors: tuple[str, ...]) -> str:
    """The CSP header value for the app's pages, framed by ``frame_ancestors`` (and the app itself)."""
    viewers = dict.fromkeys([origin_string(settings.viewer.base_url),
                             *(o for ehr in settings.ehrs for o in ehr.viewer_origins)])
    viewer = " ".join(viewers) if settings.viewer.frameable else "'none'"
    ancestors = " ".join(("'self'",) + frame_ancestors)
    return "; ".join((
        "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
        "connect-src 'self'", f"frame-src {viewer}", f"frame-ancestors {ancestors}",
        "form-action 'self'", "base-uri 'none'", "object-src 'none'"))


def install_security_headers(app: Flask, settings: Settings) -> None:
    """Add the headers above to every response.

    A launch's pages (views call :func:`frame_launch`) may be framed only by
    that launch's EHR; pages outside any launch (start, errors before a launch
    is known) by any registered EHR, so that an error shows inside the EHR's frame.
    """
    any_ehr = content_security_policy(settings, settings.frame_ancestors)

    @app.after_request
    def _headers(response: Response) -> Response:
        ancestors = g.get("frame_ancestors")
        response.headers["Content-Security-Policy"] = any_ehr if ancestors is None else \
            content_security_policy(settings, ancestors)
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = g.get("cache_control", "no-store")  # a view may allow private caching
        return response
