"""The benchmark environment: the sandbox EHR behind TLS and a latency proxy, the app and the baseline, each a process.

Network path of the headline figures (everything on loopback)::

    app / baseline / bench browser ──TCP──▶ bench.proxy (RTT injected) ──TCP──▶ sandbox (gunicorn gthread, TLS)

The sandbox's public base (its ``iss`` is ``+ /fhir``) is
``https://localhost:<proxy port>``, so discovery, the authorize redirect,
the token POST and every FHIR read and ``next`` link go through the proxy; the
bench's own control calls (stats, test launches) use the sandbox's own port
directly. TLS uses a throwaway CA made for the run (:mod:`bench.tls`), trusted
by the app processes through ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` and by
this process the same way. *sleep* mode keeps the old set-up: no proxy, the
sandbox sleeps ``LATENCY_MS`` before each response.

The app always uses one port (chosen once per run) so that every sandbox can
register its redirect URI (``APP_ORIGIN/callback``) before any app process
starts; app processes on that port (product or baseline) run one after another.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import requests

from . import procs, tls

SECRET_KEY = "bench-secret-key-not-for-production"
EHR_MAX_COUNT = 1000  # the sandbox caps _count at 1,000 (sandbox/README.md)


def registration(ehr_base: str, app_port: int, *, page_size: int = EHR_MAX_COUNT, max_pages: int = 20,
                 ttl_seconds: int = 60) -> dict:
    """A ``smart-launch.json`` document registering the app with the sandbox at ``ehr_base``.

    ``page_size`` defaults to the EHR's largest ``_count`` (the floor assumes the fewest pages this EHR allows).
    """
    origin = f"http://{procs.HOST}:{app_port}"
    return {
        "app": {"launch_uri": f"{origin}/launch", "redirect_uri": f"{origin}/callback"},
        "ehrs": [{"name": "Sandbox EHR (bench)", "iss": f"{ehr_base}/fhir", "client_id": "imaging-app",
                  "scopes": ["online_access"], "frame_ancestors": [ehr_base]}],
        "viewer": {"base_url": f"{ehr_base}/IHEInvokeImageDisplay", "viewerType": "IHE_BIR"},
        "fhir": {"page_size": page_size, "max_pages": max_pages, "connect_timeout": 3.05, "read_timeout": 30,
                 "study_list_ttl_seconds": ttl_seconds},
    }


@dataclass
class Sandbox:
    """A running sandbox EHR: ``base`` is its public origin (through the proxy), ``control`` its own port."""

    base: str
    control: str
    pid: int
    rtt_ms: int
    mode: str  # "proxy" or "sleep"
    proxy_control: str | None = None
    proxy_pid: int | None = None

    def stats(self, reset: bool = True) -> dict:
        """Per-kind counts and times since the last reset (``/__bench/stats``)."""
        return requests.get(f"{self.control}/__bench/stats", params={"reset": "1"} if reset else None,
                            timeout=10).json()

    def connections(self, reset: bool = True) -> dict:
        """The proxy's connection counters (``{}`` in sleep mode)."""
        if not self.proxy_control:
            return {}
        return requests.get(f"{self.proxy_control}/stats", params={"reset": "1"} if reset else None,
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


class Environment:
    """Ports, certificates and a scratch directory shared by every scenario of one run."""

    def __init__(self, workdir: Path, app_port: int):
        self.workdir = workdir
        self.app_port = app_port
        self.certs = tls.make_certificates(workdir / "tls")
        # This process (the bench's browser and control calls) trusts only the run's CA, like the app processes.
        os.environ.update(self.certs.client_env())

    @property
    def app_origin(self) -> str:
        """``http://127.0.0.1:<app port>``."""
        return f"http://{procs.HOST}:{self.app_port}"

    @contextmanager
    def sandbox(self, rtt_ms: int, histories: dict[str, int] | None = None, mode: str = "proxy",
                server: str = "gunicorn") -> Iterator[Sandbox]:
        """A sandbox EHR over TLS with ``histories``, its data built; ``mode`` proxy (RTT injected between
        the clients and the sandbox) or sleep (the sandbox's own ``LATENCY_MS``); ``server`` gunicorn
        (gthread, keep-alive) or werkzeug (as ``python -m sandbox``)."""
        port = procs.free_port()
        proxy_port = procs.free_port() if mode == "proxy" else None
        base = f"https://localhost:{proxy_port or port}"
        control = f"https://localhost:{port}"
        latency = rtt_ms if mode == "sleep" else 0
        settings = {"public_base_url": base, "app_origin": self.app_origin, "latency_ms": latency,
                    "histories": histories or {}}
        log = self.workdir / f"sandbox-{port}.log"
        if server == "gunicorn":
            argv = [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "gthread",
                    "--threads", "32", "--keep-alive", "600", "--timeout", "120", "--backlog", "2048",
                    "--certfile", str(self.certs.server_cert), "--keyfile", str(self.certs.server_key),
                    "--bind", f"{procs.HOST}:{port}", "--log-level", "warning",
                    "bench.sandbox_server:from_environment()"]
            env = {"BENCH_SANDBOX": json.dumps(settings)}
        else:
            argv = procs.python_module("bench.sandbox_server", "--port", str(port), "--public-base-url", base,
                                       "--latency-ms", str(latency), "--app-origin", self.app_origin,
                                       "--histories", json.dumps(histories or {}),
                                       "--certfile", str(self.certs.server_cert),
                                       "--keyfile", str(self.certs.server_key))
            env = {}
        with procs.server(argv, f"{control}/__bench/stats", env=env, log_path=log) as process:
            with self._proxy(proxy_port, port, rtt_ms) as proxy:
                # Build the dataset now (lazy in the sandbox) so no scenario pays for it.
                requests.post(f"{control}/ehr/api/launches", json={"patient": "pt-1001"},
                              timeout=120).raise_for_status()
                sandbox = Sandbox(base, control, process.pid, rtt_ms, mode,
                                  proxy[0] if proxy else None, proxy[1] if proxy else None)
                sandbox.stats(reset=True)
                sandbox.connections(reset=True)
                yield sandbox

    @contextmanager
    def _proxy(self, port: int | None, upstream_port: int, rtt_ms: int) -> Iterator[tuple[str, int] | None]:
        if port is None:
            yield None
            return
        control_port = procs.free_port()
        argv = procs.python_module("bench.proxy", "--port", str(port), "--upstream-port", str(upstream_port),
                                   "--rtt-ms", str(rtt_ms), "--control-port", str(control_port))
        control = f"http://{procs.HOST}:{control_port}"
        with procs.server(argv, f"{control}/stats", log_path=self.workdir / f"proxy-{port}.log") as process:
            yield control, process.pid

    def _registration_file(self, document: dict, name: str) -> Path:
        path = self.workdir / f"{name}.json"
        path.write_text(json.dumps(document, indent=1), encoding="utf-8")
        return path

    @contextmanager
    def instrumented_app(self, document: dict, name: str, profile_dir: Path | None = None,
                         baseline: bool = False) -> Iterator[AppProcess]:
        """A fresh app process with its own empty launch store, instrumented (:mod:`bench.app_server`).

        Served by gunicorn with one gthread worker (8 threads): the production server,
        one process (its records and VmHWM are the app's). ``baseline``: the fhirclient
        baseline (:mod:`bench.baseline_app`) instead of the product, same instrumentation.
        """
        reg = self._registration_file(document, name)
        env = {"BENCH_REGISTRATION": str(reg), "BENCH_STORE": str(self.workdir / f"{name}.sqlite3"),
               "SECRET_KEY": SECRET_KEY, "BENCH_PROFILE_DIR": str(profile_dir or ""),
               "BENCH_APP": "baseline" if baseline else "product", **self.certs.client_env()}
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
    def redis(self) -> Iterator[str | None]:
        """A throwaway ``redis-server`` on a free loopback port (no persistence): its URL, or ``None`` when absent."""
        binary = shutil.which("redis-server")
        if binary is None:
            yield None
            return
        port = procs.free_port()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir)]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)

    @contextmanager
    def gunicorn_app(self, document: dict, name: str, *, workers: int = 2, worker_class: str = "gthread",
                     threads: int = 8, store_url: str | None = None) -> Iterator[AppProcess]:
        """``gunicorn 'app:create_app()'`` configured by environment, as in production (no access log).

        ``store_url``: ``LAUNCH_STORE_URL`` (e.g. a ``redis://`` store); default a SQLite file of the run.
        """
        reg = self._registration_file(document, name)
        store = self.workdir / f"{name}.sqlite3"
        argv = self._gunicorn_argv("app:create_app()", workers, worker_class, threads)
        env = {"SMART_LAUNCH_CONFIG": str(reg), "SECRET_KEY": SECRET_KEY, "LAUNCH_STORE_PATH": str(store),
               **({"LAUNCH_STORE_URL": store_url} if store_url else {}), **self.certs.client_env()}
        with procs.server(argv, f"{self.app_origin}/healthz", env=env,
                          log_path=self.workdir / f"{name}.log") as process:
            yield AppProcess(self.app_origin, process.pid, self.workdir, process.pid)
