"""Sandbox EHR: a strict SMART on FHIR EHR with a FHIR R4 imaging API and an IHE IID display.

Usage::

    from sandbox import create_app
    app = create_app({"PUBLIC_BASE_URL": "http://localhost:8800"})

See ``sandbox/README.md`` for the contract (endpoints, clients, patients, faults).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, redirect

from .authorize import PendingAuthorizations
from .authorize import bp as oauth_bp
from .config import load_config
from .dataset import Dataset
from .dicomweb import bp as dicomweb_bp
from .ehr import bp as ehr_bp
from .fhir_api import bp as fhir_bp
from .iid import bp as iid_bp
from .launches import LaunchStore
from .oauth import OAuthStore, SmartAuthorizationServer, load_clients
from .state import SandboxState

__all__ = ["create_app"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the sandbox Flask app.

    *config* keys (all optional; also ``SANDBOX_<KEY>`` env vars): ``PUBLIC_BASE_URL``,
    ``APP_ORIGIN``, ``APP_LAUNCH_URL``, ``ACCESS_TOKEN_LIFETIME``, ``REFRESH_TOKEN_LIFETIME``,
    ``CODE_LIFETIME`` (seconds), ``LATENCY_MS``, ``CLIENTS_FILE``, ``EXTRA_HISTORIES``,
    ``HIDE_IMAGINGSTUDY`` (bool).
    Unknown keys are passed to ``app.config`` (e.g. ``TESTING``). Raises
    ``ValueError``/``OSError`` for bad values or an unreadable clients file.
    Data is built lazily on the first request that needs it.
    """
    settings = load_config(config)
    app = Flask(__name__, static_url_path="/sandbox-static")
    app.config.update({k: v for k, v in dict(config or {}).items()})
    app.config["SANDBOX"] = settings
    clients = load_clients(settings["CLIENTS_FILE"], settings["APP_ORIGIN"])
    store = OAuthStore(settings["CODE_LIFETIME"], settings["REFRESH_TOKEN_LIFETIME"])
    server = SmartAuthorizationServer(app, clients, store, settings)
    app.extensions["sandbox"] = SandboxState(
        config=settings,
        dataset=Dataset(settings["EXTRA_HISTORIES"]),
        launches=LaunchStore(settings["LAUNCH_LIFETIME"]),
        oauth=server,
        pending=PendingAuthorizations(),
    )
    for blueprint in (fhir_bp, oauth_bp, iid_bp, ehr_bp, dicomweb_bp):
        app.register_blueprint(blueprint)

    latency = settings["LATENCY_MS"] / 1000

    @app.before_request
    def _latency():
        if latency:
            time.sleep(latency)

    @app.after_request
    def _common_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    @app.get("/")
    def index():
        return redirect("/ehr")

    return app
