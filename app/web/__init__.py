"""The web layer, on top of every other package: views, the study-list presenter, error pages, browser security.

Only the app factory (:func:`app.create_app`) imports it.
"""

from __future__ import annotations

from flask import Flask

from ..config import Settings
from ..observability import metrics
from .error_context import launch_of_error
from .errors import register_error_handlers
from .security import browser_binding, configure_session_cookie, install_security_headers
from .services import EXTENSION_KEY, Services

TEMPLATES = ("studies.html", "error.html", "start.html", "cookie_blocked.html")


def init_app(app: Flask, services: Services) -> None:
    """Register the views, error pages and security headers on ``app`` with ``services``."""
    from .views import bp, relaunch_url_for

    settings: Settings = services.settings
    app.extensions[EXTENSION_KEY] = services
    configure_session_cookie(app, settings)
    app.register_blueprint(bp)
    for name in TEMPLATES:
        app.jinja_env.get_template(name)  # compile now, not on a clinician's first launch
    register_error_handlers(app, relaunch_url_for,
                            on_error=lambda exc, page: metrics.ERRORS.labels(type(exc).__name__).inc(),
                            launch_of=launch_of_error, cookie_sent=lambda: browser_binding() is not None)
    install_security_headers(app, settings)
