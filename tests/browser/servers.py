"""Live servers and Chromium for the browser tests and ``scripts/screenshot.py``.

The sandbox EHR and the app run as real HTTP servers on free loopback ports,
on two different *sites*: the browser reaches the EHR at
``http://localhost:<ehr_port>`` and the app at ``http://127.0.0.1:<app_port>``,
so the app is a cross-site iframe inside the EHR's chart page (and the viewer,
served by the EHR, a cross-site iframe inside the app), as in a hospital.

Chromium is Debian's ``/usr/bin/chromium`` driven by Playwright's sync API
(``playwright install`` is never needed).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

from flask import Flask

import app as imaging_app
import sandbox
from tests.support import live_server, sandbox_registration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
CLIENT_ID = "imaging-app"
EHR_NAME = "Sandbox EHR"
#: ``<iframe class="app-frame">`` of the sandbox chart page (sandbox/templates/ehr_chart.html)
APP_FRAME = "iframe.app-frame"
VIEWER_FRAME = "#viewer-frame"


class _Deferred:
    """A WSGI app set after the server started (the sandbox needs the app's port, the app the EHR's)."""

    def __init__(self) -> None:
        self.target: Callable | None = None

    def __call__(self, environ, start_response):
        if self.target is None:  # pragma: no cover - only if a request beats start_servers()
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"starting"]
        return self.target(environ, start_response)


def registration(app_origin: str, ehr_origin: str) -> dict[str, Any]:
    """The app's ``smart-launch.json`` for the sandbox at *ehr_origin* (app served at *app_origin*)."""
    return sandbox_registration(app_origin, ehr_origin, name=EHR_NAME, scopes=["online_access", "patient/Endpoint.rs"])


@dataclass
class Servers:
    """The two running servers: origins as the browser uses them, and the Flask objects (in-process state)."""

    ehr_origin: str
    app_origin: str
    ehr: Flask
    app: Flask

    @property
    def iss(self) -> str:
        """The sandbox's FHIR base URL (the launch's ``iss``)."""
        return f"{self.ehr_origin}/fhir"

    @property
    def viewer_base(self) -> str:
        """The IID display URL the app's registration names."""
        return f"{self.ehr_origin}/IHEInvokeImageDisplay"

    def chart_url(self, patient_id: str, **query: str) -> str:
        """The EHR chart of *patient_id* (Imaging tab: launches the app in its frame)."""
        suffix = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
        return f"{self.ehr_origin}/ehr/patients/{patient_id}{suffix}"

    # -- sandbox data, the oracle the tests compare the pages with ------------------------------
    def patient(self, patient_id: str):
        """The sandbox's record of *patient_id* (``display_name``, ``studies``, ...)."""
        with self.ehr.app_context():
            return self.ehr.extensions["sandbox"].dataset.patient(patient_id)

    def study(self, patient_id: str, study_id: str):
        """The sandbox's record of one study of *patient_id* (``study_instance_uid``, ``modalities``, ...)."""
        return next(s for s in self.patient(patient_id).studies if s.id == study_id)

    def token_records(self) -> list:
        """Every access token record (``sandbox.oauth.TokenRecord``) the sandbox has issued so far.

        Asks the in-memory ``OAuthStore`` (``sandbox/oauth.py``), the only place tokens exist.
        """
        return self.ehr.extensions["sandbox"].oauth.store.issued_tokens()

    def issued_tokens(self) -> set[str]:
        """Every access and refresh token value the sandbox's authorization server has issued so far."""
        records = self.token_records()
        return {r.access_token for r in records} | {r.refresh_token for r in records if r.refresh_token}


@contextmanager
def start_servers(store_dir: str | os.PathLike | None = None,
                  configure_app: Callable[[Flask], None] | None = None) -> Iterator[Servers]:
    """Start the sandbox EHR and the app on free loopback ports; stop both on exit.

    *store_dir*: where the app keeps its launch store (a temporary directory
    by default). *configure_app*: called with the app before it serves (a
    test may change its config, e.g. to show that a cookie setting matters).
    """
    with ExitStack() as stack:
        if store_dir is None:
            store_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="browser-tests-"))
        ehr_wsgi = _Deferred()
        ehr_port = stack.enter_context(live_server(lambda port: ehr_wsgi))
        ehr_origin = f"http://localhost:{ehr_port}"
        built: dict[str, Flask] = {}

        def build_app(port: int) -> Flask:
            flask_app = imaging_app.create_app(
                registration(f"http://127.0.0.1:{port}", ehr_origin), secret_key="browser-tests",
                store_path=Path(store_dir) / "launches.sqlite3")
            if configure_app is not None:
                configure_app(flask_app)
            built["app"] = flask_app
            return flask_app

        app_port = stack.enter_context(live_server(build_app))
        app_origin = f"http://127.0.0.1:{app_port}"
        ehr = sandbox.create_app({"PUBLIC_BASE_URL": ehr_origin, "APP_ORIGIN": app_origin})
        ehr_wsgi.target = ehr
        yield Servers(ehr_origin=ehr_origin, app_origin=app_origin, ehr=ehr, app=built["app"])


def chromium_available() -> bool:
    """True when Debian's Chromium is installed where the tests expect it."""
    return os.access(CHROMIUM, os.X_OK)


def launch_chromium(playwright):
    """Headless Debian Chromium through Playwright (no downloaded browser)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def study_uid_of(viewer_url: str) -> str:
    """The ``studyUID`` of an IID (RAD-106) request URL (one UID expected)."""
    values = parse_qs(urlsplit(viewer_url).query)["studyUID"]
    assert len(values) == 1, viewer_url
    return values[0]


def save_artifacts(page, directory: Path) -> None:
    """Write a screenshot of *page*, its HTML and each frame's HTML into *directory*."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(directory / "page.png"), full_page=True)
    except Exception as error:  # noqa: BLE001 - best effort: the test already failed
        (directory / "page.png.error.txt").write_text(repr(error), encoding="utf-8")
    for index, frame in enumerate(page.frames):
        name = "page" if frame == page.main_frame else f"frame-{index}"
        try:
            html = frame.content()
        except Exception as error:  # noqa: BLE001 - a frame may be detached or mid-navigation
            html = f"<!-- could not read frame: {error!r} -->"
        (directory / f"{name}.html").write_text(f"<!-- {frame.url} -->\n{html}", encoding="utf-8")
