"""The app for benchmarks, instrumented, served by gunicorn: ``gunicorn 'bench.app_server:from_environment()'``.

Instrumentation lives in this process only (app code is not modified):

* ``requests.Session.request`` is wrapped to record each outbound call's
  wall-clock interval. That covers the app's :class:`app.http.OutboundSession`
  (discovery, FHIR reads and pages) and authlib's ``OAuth2Session`` (the token
  POST), which both end in it, each call once.
* :class:`TimingMiddleware` times every app request and splits it into
  *upstream wait* (the union of the outbound intervals inside the request:
  concurrent calls count once) and *app work* (wall minus wait: parsing,
  normalising, the store, rendering), plus the process CPU time. The split
  assumes one app request at a time, which is how the latency scenarios run.
  ``GET /__bench/requests`` returns the records (``?reset=1`` clears them).
* ``--profile-dir DIR``: each launch, callback and list request also runs
  under cProfile (its own thread only); its stats are dumped to
  ``DIR/<kind>-<pid>-<n>.prof``, named in the request's record.

:mod:`bench.env` serves it with gunicorn (one gthread worker, as in production
but single-process so the records and the memory figure are one process's).
"""

from __future__ import annotations

import cProfile
import collections
import itertools
import json
import os
import threading
import time

import requests

RECORDS_PATH = "/__bench/requests"
_intervals: collections.deque = collections.deque(maxlen=100_000)


def instrument_outbound() -> None:
    """Wrap ``requests.Session.request`` to append ``(start, end)`` of every outbound call (once per process)."""
    original = requests.Session.request
    if getattr(original, "bench_timed", False):
        return

    def timed_request(self, method, url, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original(self, method, url, *args, **kwargs)
        finally:
            _intervals.append((started, time.perf_counter()))

    timed_request.bench_timed = True
    requests.Session.request = timed_request


def union_length(spans: list[tuple[float, float]]) -> float:
    """Total length covered by possibly overlapping ``(start, end)`` spans."""
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(spans):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total


def route_kind(path: str) -> str:
    """``launch``, ``callback``, ``list`` or ``other`` for an app path."""
    if path == "/launch":
        return "launch"
    if path == "/callback":
        return "callback"
    if path.startswith("/l/"):
        return "list"
    return "other"


class TimingMiddleware:
    """WSGI middleware recording wall time, upstream wait, app work and CPU time of each request."""

    def __init__(self, app, profile_dir: str | None = None):
        self.app = app
        self.profile_dir = profile_dir
        self._lock = threading.Lock()
        self._records: list[dict] = []
        self._profile_numbers = itertools.count(1)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == RECORDS_PATH:
            return self._answer(environ, start_response)
        status_holder = {}

        def recording_start_response(status, headers, exc_info=None):
            status_holder["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        kind = route_kind(path)
        profiler = cProfile.Profile(time.thread_time) if self.profile_dir and kind != "other" else None
        started, cpu_started = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        body = self.app(environ, recording_start_response)
        try:
            chunks = list(body)
        finally:
            if hasattr(body, "close"):
                body.close()
            if profiler:
                profiler.disable()
        ended, cpu = time.perf_counter(), time.process_time() - cpu_started
        profile_file = None
        if profiler:
            profile_file = f"{self.profile_dir}/{kind}-{os.getpid()}-{next(self._profile_numbers)}.prof"
            profiler.dump_stats(profile_file)
        spans = [(s, e) for s, e in list(_intervals) if s >= started and e <= ended]
        wall, wait = ended - started, union_length(spans)
        with self._lock:
            self._records.append({"kind": kind, "status": status_holder.get("status"),
                                  "wall_s": wall, "upstream_wait_s": wait, "app_work_s": wall - wait,
                                  "cpu_s": cpu, "upstream_calls": len(spans),
                                  "bytes": sum(len(c) for c in chunks), "profile": profile_file})
        return chunks

    def _answer(self, environ, start_response):
        with self._lock:
            body = json.dumps(self._records).encode()
            if "reset=1" in environ.get("QUERY_STRING", ""):
                self._records = []
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def instrumented_app(registration_path: str, store_path: str, secret_key: str, profile_dir: str | None = None,
                     baseline: bool = False):
    """The app built from a registration file, with outbound timing and :class:`TimingMiddleware` around it.

    ``baseline``: the fhirclient baseline (:mod:`bench.baseline_app`) from the same registration instead.
    """
    instrument_outbound()
    with open(registration_path, encoding="utf-8") as handle:
        registration = json.load(handle)
    if baseline:
        from bench.baseline_app import create_app as create_baseline

        return TimingMiddleware(create_baseline(registration, secret_key), profile_dir)
    from app import create_app

    app = create_app(registration, secret_key=secret_key, store_path=store_path)
    return TimingMiddleware(app, profile_dir)


def from_environment():
    """WSGI entry for gunicorn: ``gunicorn 'bench.app_server:from_environment()'``.

    Reads ``BENCH_REGISTRATION`` (file), ``BENCH_STORE`` (SQLite path), ``SECRET_KEY``
    and optionally ``BENCH_PROFILE_DIR`` and ``BENCH_APP`` (``product``, the default, or ``baseline``).
    """
    return instrumented_app(os.environ["BENCH_REGISTRATION"], os.environ["BENCH_STORE"], os.environ["SECRET_KEY"],
                            os.environ.get("BENCH_PROFILE_DIR") or None,
                            baseline=os.environ.get("BENCH_APP") == "baseline")
