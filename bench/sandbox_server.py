"""The sandbox EHR for benchmarks, wrapped in a request-counting middleware, served two ways.

The sandbox app (``sandbox.create_app``) is wrapped in :class:`CountingMiddleware`,
which counts requests by kind (discovery, authorize, token, Patient,
ImagingStudy page, ...) and times each one, and answers ``GET /__bench/stats``
itself (``?reset=1`` clears the counters after reading).

* ``gunicorn ... 'bench.sandbox_server:from_environment()'`` (what the bench
  uses): one gthread worker (the sandbox keeps its state in memory), TLS from
  gunicorn's ``--certfile/--keyfile``, real HTTP/1.1 keep-alive
  (``--keep-alive``); settings in ``BENCH_SANDBOX`` (JSON).
* ``python -m bench.sandbox_server --port N ...``: werkzeug's threaded server
  with ``python -m sandbox``'s request handler, as ``make demo`` serves it,
  optionally with TLS. Although that handler sets HTTP/1.1, werkzeug 3 sends
  ``Connection: close`` on every response (``WSGIRequestHandler.run_wsgi``),
  so each request costs a new connection; the bench's network section shows
  it next to gunicorn.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections import defaultdict

from werkzeug.serving import make_server

from sandbox.__main__ import RedactingRequestHandler

STATS_PATH = "/__bench/stats"


def request_kind(method: str, path: str) -> str:
    """The kind of an upstream request, from its method and path."""
    if path.endswith("/.well-known/smart-configuration") or path.endswith("/metadata"):
        return "discovery"
    if path.startswith("/oauth2/authorize"):
        return "authorize"
    if path.startswith("/oauth2/token"):
        return "token"
    if path.startswith("/fhir/Patient/"):
        return "Patient"
    if path == "/fhir/ImagingStudy":
        return "ImagingStudy"
    if path.startswith("/ehr/api/launches"):
        return "ehr-launch-api"
    return "other"


class CountingMiddleware:
    """WSGI middleware: per kind, the count, wall time and CPU time of sandbox requests.

    ``wall`` runs from the call to the end of the body (the injected latency
    included); ``cpu`` is the handling thread's CPU time (``time.thread_time``;
    werkzeug serves each request on its own thread), i.e. the sandbox's own cost.
    """

    def __init__(self, app, latency_ms: int):
        self.app = app
        self.latency_ms = latency_ms
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._stats = defaultdict(lambda: {"count": 0, "wall_s": 0.0, "cpu_s": 0.0, "max_wall_s": 0.0})
        self._since = time.time()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == STATS_PATH:
            return self._answer_stats(environ, start_response)
        kind = request_kind(environ.get("REQUEST_METHOD", "GET"), path)
        started, cpu_started = time.perf_counter(), time.thread_time()
        body = self.app(environ, start_response)
        try:
            chunks = list(body)  # the whole response is produced inside the timed span
        finally:
            if hasattr(body, "close"):
                body.close()
            wall, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
            with self._lock:
                entry = self._stats[kind]
                entry["count"] += 1
                entry["wall_s"] += wall
                entry["cpu_s"] += cpu
                entry["max_wall_s"] = max(entry["max_wall_s"], wall)
        return chunks

    def _answer_stats(self, environ, start_response):
        with self._lock:
            payload = {"latency_ms": self.latency_ms, "since": self._since, "until": time.time(),
                       "kinds": {k: dict(v) for k, v in self._stats.items()}}
            if "reset=1" in environ.get("QUERY_STRING", ""):
                self._reset()
        body = json.dumps(payload).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


class QuietHandler(RedactingRequestHandler):
    """``python -m sandbox``'s handler (HTTP/1.1 keep-alive) without the access log (time, launch ids)."""

    def log_request(self, code="-", size="-"):  # noqa: D102 - werkzeug API
        pass


def build(public_base_url: str, app_origin: str, latency_ms: int = 0, histories: dict | None = None):
    """The sandbox for ``public_base_url`` (its ``iss`` is ``+ /fhir``), wrapped in :class:`CountingMiddleware`.

    ``latency_ms``: the sandbox's own ``LATENCY_MS`` sleep (the *sleep* mode; 0 behind the latency proxy).
    """
    from sandbox import create_app

    sandbox = create_app({"PUBLIC_BASE_URL": public_base_url, "APP_ORIGIN": app_origin,
                          "LATENCY_MS": latency_ms, "EXTRA_HISTORIES": histories or {}})
    return CountingMiddleware(sandbox, latency_ms)


def from_environment():
    """WSGI entry for gunicorn: ``BENCH_SANDBOX`` = JSON ``{"public_base_url", "app_origin", "latency_ms",
    "histories"}``."""
    settings = json.loads(os.environ["BENCH_SANDBOX"])
    return build(settings["public_base_url"], settings["app_origin"], int(settings.get("latency_ms", 0)),
                 settings.get("histories") or {})


def main(argv: list[str] | None = None) -> None:
    """Werkzeug mode: build the sandbox with the given settings, wrap it, serve on 127.0.0.1 until terminated."""
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_server", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--public-base-url", help="default http(s)://127.0.0.1:PORT")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--app-origin", required=True)
    parser.add_argument("--histories", default="{}", help='JSON, e.g. {"pt-2001": 1000}')
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    args = parser.parse_args(argv)
    scheme = "https" if args.certfile else "http"
    app = build(args.public_base_url or f"{scheme}://127.0.0.1:{args.port}", args.app_origin, args.latency_ms,
                json.loads(args.histories))
    ssl_context = (args.certfile, args.keyfile) if args.certfile else None
    server = make_server("127.0.0.1", args.port, app, threaded=True, request_handler=QuietHandler,
                         ssl_context=ssl_context)
    server.serve_forever()


if __name__ == "__main__":
    main()
