"""App instances as real gunicorn processes, a live sandbox EHR that counts token requests, and a browser.

``gunicorn_instance(...)`` starts ``<python> -m gunicorn -c gunicorn.conf.py 'app:create_app()'`` (or an
installed ``imaging-app serve``) on a free loopback port and waits for ``/healthz``. ``CountingSandbox``
serves the sandbox EHR in a thread and counts ``POST /oauth2/token`` by ``grant_type``. ``Browser`` keeps
the app's Secure session cookie over plain http to loopback (as browsers do for 127.0.0.1) and sends the
public ``Host`` of the instances (a load balancer's), whichever port it addresses.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import parse_qs, urlsplit

import requests

from sandbox import create_app as create_sandbox
from tests.support import live_server

REPO = Path(__file__).resolve().parents[2]
SESSION_COOKIE = "imaging_app_session"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class CountingSandbox:
    """The sandbox EHR's WSGI app, counting token requests: ``grants["authorization_code" | "refresh_token"]``."""

    def __init__(self, wsgi):
        self.wsgi = wsgi
        self.grants: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/oauth2/token" and environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)

            environ["wsgi.input"] = io.BytesIO(body)
            grant = parse_qs(body.decode("ascii", "replace")).get("grant_type", ["?"])[0]
            with self._lock:
                self.grants[grant] += 1
        return self.wsgi(environ, start_response)


@contextmanager
def sandbox_ehr(app_origin: str, **config) -> Iterator[tuple[str, CountingSandbox]]:
    """A live sandbox EHR at ``http://localhost:<port>`` trusting ``app_origin``; yields ``(base, counter)``."""
    holder: dict[str, CountingSandbox] = {}

    def build(port: int):
        holder["app"] = CountingSandbox(create_sandbox({"PUBLIC_BASE_URL": f"http://localhost:{port}",
                                                        "APP_ORIGIN": app_origin, **config}))
        return holder["app"]

    with live_server(build) as port:
        yield f"http://localhost:{port}", holder["app"]


class Instance:
    """One running app process: ``port``, ``url`` (``http://127.0.0.1:<port>``), ``process``, ``log``."""

    def __init__(self, port: int, process: subprocess.Popen, log: Path):
        self.port, self.process, self.log = port, process, log
        self.url = f"http://127.0.0.1:{port}"

    def kill(self) -> None:
        """SIGKILL the whole process group (master and workers), as a host dying would."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)


@contextmanager
def gunicorn_instance(env: dict[str, str], log: Path, *, port: int | None = None, command: Sequence[str] | None = None,
                      cwd: Path = REPO, workers: int = 2, startup_seconds: float = 60.0) -> Iterator[Instance]:
    """Start one app instance under gunicorn (its own process group) and stop it on exit.

    ``command``: the program and its leading arguments (default: this checkout's
    ``python -m gunicorn -c gunicorn.conf.py``); ``--bind``/``--workers`` and the
    app are appended unless ``command`` ends with ``serve`` (then only the options).
    """
    port = port or free_port()
    options = ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", "4"]
    if command is None:
        argv = [str(REPO / ".venv" / "bin" / "python"), "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py"),
                *options, "app:create_app()"]
    else:
        argv = [*command, *options]
    out = open(log, "ab")
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    instance = Instance(port, process, log)
    try:
        deadline = time.monotonic() + startup_seconds
        while True:
            try:
                if requests.get(f"{instance.url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"app instance on port {port} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield instance
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                instance.kill()
        out.close()


class Browser:
    """One clinician's browser: its app session cookie, the public ``host`` it believes it talks to."""

    def __init__(self, public_host: str):
        self.public_host = public_host
        self.cookie: str | None = None
        self.http = requests.Session()

    def get(self, instance_url: str, path: str, **kwargs) -> requests.Response:
        """``GET instance_url + path`` with the public Host and the cookie; keeps a new cookie; no redirects."""
        headers = {"Host": self.public_host}
        if self.cookie:
            headers["Cookie"] = f"{SESSION_COOKIE}={self.cookie}"
        response = self.http.get(instance_url + path, headers=headers, allow_redirects=False, timeout=60, **kwargs)
        if SESSION_COOKIE in response.cookies:
            self.cookie = response.cookies[SESSION_COOKIE]
        return response

    def authorize(self, authorize_url: str) -> str:
        """What the browser does at the EHR (a launch with a patient: no picker); the app path it is sent back to."""
        response = requests.get(authorize_url, allow_redirects=False, timeout=30)
        assert response.status_code in (302, 303), response.text[:300]
        parts = urlsplit(response.headers["Location"])
        return parts.path + "?" + parts.query


def ehr_launch(ehr_base: str, patient: str, **options) -> str:
    """A sandbox EHR launch of ``patient``; the app path of its launch URL (``/launch?iss=..&launch=..``)."""
    response = requests.post(f"{ehr_base}/ehr/api/launches", json={"patient": patient, **options}, timeout=10)
    assert response.status_code == 201, response.text
    parts = urlsplit(response.json()["launch_url"])
    return parts.path + "?" + parts.query


