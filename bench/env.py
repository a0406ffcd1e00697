"""The benchmark environment: the sandbox EHR and the app under gunicorn (instrumented or plain), each its own process.

All servers listen on 127.0.0.1. The app always uses one port (chosen once per
run) so that every sandbox can register its redirect URI
(``APP_ORIGIN/callback``) before any app process starts; app processes on
that port run one after another.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import requests

from . import procs

LARGE_PATIENT = "pt-2001"
LARGE_HISTORY = 1000
SECRET_KEY = "bench-secret-key-not-for-production"


def registration(ehr_base: str, app_port: int, *, page_size: int = 200, max_pages: int = 20,
                 ttl_seconds: int = 60, more_ehr_bases: tuple[str, ...] = ()) -> dict:
    """A ``smart-launch.json`` document registering the app with the sandbox at ``ehr_base`` (and more)."""
    origin = f"http://{procs.HOST}:{app_port}"
    return {
        "app": {"launch_uri": f"{origin}/launch", "redirect_uri": f"{origin}/callback"},
        "ehrs": [{"name": f"Sandbox EHR {index} (bench)", "iss": f"{base}/fhir", "client_id": "imaging-app",
                  "scopes": ["online_access"], "frame_ancestors": [base]}
                 for index, base in enumerate((ehr_base, *more_ehr_bases), start=1)],
        "viewer": {"base_url": f"{ehr_base}/IHEInvokeImageDisplay", "viewerType": "IHE_BIR"},
        "fhir": {"page_size": page_size, "max_pages": max_pages, "connect_timeout": 3.05, "read_timeout": 20,
                 "study_list_ttl_seconds": ttl_seconds},
    }


@dataclass
class Sandbox:
    """A running sandbox EHR process with its counting middleware."""

    base: str
    pid: int
    latency_ms: int

    def stats(self, reset: bool = True) -> dict:
        """Per-kind counts and times since the last reset (``/__bench/stats``)."""
        return requests.get(f"{self.base}/__bench/stats", params={"reset": "1"} if reset else None,
                            timeout=10).json()


@dataclass
class AppProcess:
    """A running app: ``pid`` of the gunicorn arbiter, ``worker_pid`` of its (first) worker."""

    base: str
    pid: int
    workdir: Path
    worker_pid: int

    def records(self, reset: bool = True) -> list[dict]:
        """Per-request timing records of the instrumented app (``/__bench/requests``)."""
        return requests.get(f"{self.base}/__bench/requests", params={"reset": "1"} if reset else None,
                            timeout=10).json()


@dataclass
class Environment:
    """Ports and a scratch directory shared by every scenario of one run."""

    workdir: Path
    app_port: int

    @property
    def app_origin(self) -> str:
        """``http://127.0.0.1:<app port>``."""
        return f"http://{procs.HOST}:{self.app_port}"

    @contextmanager
    def sandbox(self, latency_ms: int) -> Iterator[Sandbox]:
        """A sandbox EHR with ``LATENCY_MS=latency_ms`` and the 1,000-study patient, its data built."""
        port = procs.free_port()
        base = f"http://{procs.HOST}:{port}"
        argv = procs.python_module("bench.sandbox_server", "--port", str(port), "--latency-ms", str(latency_ms),
                                   "--app-origin", self.app_origin,
                                   "--histories", json.dumps({LARGE_PATIENT: LARGE_HISTORY}))
        with procs.server(argv, f"{base}/__bench/stats", log_path=self.workdir / f"sandbox-{port}.log") as process:
            # Build the dataset now (lazy in the sandbox) so no scenario pays for it.
            requests.post(f"{base}/ehr/api/launches", json={"patient": LARGE_PATIENT}, timeout=60).raise_for_status()
            sandbox = Sandbox(base, process.pid, latency_ms)
            sandbox.stats(reset=True)
            yield sandbox

    def _registration_file(self, document: dict, name: str) -> Path:
        path = self.workdir / f"{name}.json"
        path.write_text(json.dumps(document, indent=1), encoding="utf-8")
        return path

    @contextmanager
    def instrumented_app(self, document: dict, name: str, profile_dir: Path | None = None) -> Iterator[AppProcess]:
        """A fresh app process with its own empty launch store, instrumented (:mod:`bench.app_server`).

        Served by gunicorn with one gthread worker (8 threads): the production server,
        one process (its records and VmHWM are the app's).
        """
        reg = self._registration_file(document, name)
        env = {"BENCH_REGISTRATION": str(reg), "BENCH_STORE": str(self.workdir / f"{name}.sqlite3"),
               "SECRET_KEY": SECRET_KEY, "BENCH_PROFILE_DIR": str(profile_dir or "")}
        with procs.server(self._gunicorn_argv("bench.app_server:from_environment()", 1, "gthread", 8),
                          f"{self.app_origin}/healthz", env=env, log_path=self.workdir / f"{name}.log") as process:
            workers = procs.children(process.pid)
            yield AppProcess(self.app_origin, process.pid, self.workdir, workers[0] if workers else process.pid)

    def _gunicorn_argv(self, entry: str, workers: int, worker_class: str, threads: int) -> list[str]:
        argv = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", worker_class,
                "--bind", f"{procs.HOST}:{self.app_port}", "--backlog", "2048", "--log-level", "warning"]
        if worker_class == "gthread":
            argv += ["--threads", str(threads)]
        return argv + [entry]

    @contextmanager
    def gunicorn_app(self, document: dict, name: str, *, workers: int = 2, worker_class: str = "gthread",
                     threads: int = 8) -> Iterator[AppProcess]:
        """``gunicorn 'app:create_app()'`` configured by environment, as in production (no access log)."""
        reg = self._registration_file(document, name)
        store = self.workdir / f"{name}.sqlite3"
        argv = self._gunicorn_argv("app:create_app()", workers, worker_class, threads)
        env = {"SMART_LAUNCH_CONFIG": str(reg), "SECRET_KEY": SECRET_KEY, "LAUNCH_STORE_PATH": str(store)}
        with procs.server(argv, f"{self.app_origin}/healthz", env=env,
                          log_path=self.workdir / f"{name}.log") as process:
            yield AppProcess(self.app_origin, process.pid, self.workdir, process.pid)
