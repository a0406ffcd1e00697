"""Section 6, hostile EHR: the app as the README runs it in production, registered with a healthy and a hostile EHR.

The app runs as ``gunicorn --workers 2 --threads 8 'app:create_app()'``
(:meth:`bench.env.Environment.gunicorn_app`) with a registration naming two
EHRs: the run's sandbox (TLS, behind the latency proxy, as every section uses
it) and :mod:`bench.hostile_ehr` (plain HTTP on 127.0.0.1, its own process),
whose ImagingStudy search is switched between *small*, *trickle* (one
16-byte chunk every 5 s), *big* (a 50 MB Bundle with ``Content-Length``) and
*big-chunked* (the same, no length announced). Everything else is the app's
defaults (``fhir.max_page_bytes`` 8 MiB, 20 pending launches per browser,
5,000 in all) except ``fhir.deadline_seconds``, run at each of
``Plan.hostile_deadlines`` (30 = the default, and 5 to keep the run short).

1. *Trickle*: 16 launches at the hostile EHR are completed (``GET /launch``,
   its authorize, ``/callback``; a cookie-keeping ``requests`` session per
   launch, redirects followed by hand), then their 16 list pages are loaded at
   once while the hostile EHR trickles; meanwhile 2 clients run healthy
   launch → list loops against the sandbox. Reported: how long each list load
   was held and its status; healthy launch → list times then against the same
   loop before the trickle (median, p95, max, failures).
2. *50 MB Bundle*: one and then four concurrent list loads (``refresh=1``) of
   the hostile EHR's 50 MB answer, each variant in a fresh app: peak RSS of each
   gunicorn worker (``VmHWM`` reset via ``clear_refs`` before, and ``VmRSS``
   sampled every 10 ms), status and size of the page, RSS after.
3. *Pending launches*: 16 clients (2 processes × 8 threads, ``http.client``
   keep-alive) for ``Plan.hostile_pending_seconds`` sending
   ``GET /launch?iss=<sandbox iss>`` back to back, each keeping its cookie or
   (second variant, fresh app) sending none; 303 against 429 per client, the
   pending rows in the store and the store's files' size afterwards.
"""

from __future__ import annotations

import http.client
import os
import sqlite3
import statistics
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from . import browser, procs
from .env import Environment, Sandbox, registration
from .load import percentile

HEALTHY_PATIENT = "pt-1001"  # 8 studies, as section 1
TRICKLE_LOADS = 16
HEALTHY_CLIENTS = 2
HEALTHY_BEFORE = 6  # launches per healthy client before the trickle
BIG_CONCURRENT = (1, 4)
BIG_VARIANTS = ("big-chunked", "big")
PENDING_CLIENTS = 16
PENDING_MAX_REQUESTS = 40_000
TOO_LARGE_TEXT = "more than the app accepts"
TIMEOUT_TEXT = "did not answer in time"
SAMPLE_SECONDS = 0.01


@dataclass
class HostileEhr:
    """The running hostile EHR: ``origin`` (http, loopback), ``iss`` = origin + ``/fhir``."""

    origin: str
    pid: int

    @property
    def iss(self) -> str:
        return f"{self.origin}/fhir"

    def mode(self, mode: str) -> None:
        requests.get(f"{self.origin}/__bench/mode", params={"set": mode}, timeout=60).raise_for_status()

    def stats(self, reset: bool = False) -> dict:
        return requests.get(f"{self.origin}/__bench/stats", params={"reset": "1"} if reset else None,
                            timeout=10).json()


@contextmanager
def hostile_ehr(env: Environment, trickle_seconds: float = 5.0) -> Iterator[HostileEhr]:
    """:mod:`bench.hostile_ehr` in its own process on a free loopback port, stopped when the block ends."""
    port = procs.free_port()
    argv = procs.python_module("bench.hostile_ehr", "--port", str(port), "--app-origin", env.app_origin,
                               "--trickle-seconds", str(trickle_seconds))
    origin = f"http://{procs.HOST}:{port}"
    with procs.server(argv, f"{origin}/__bench/stats", log_path=env.workdir / "hostile-ehr.log") as process:
        yield HostileEhr(origin, process.pid)


def hostile_registration(ehr: Sandbox, hostile: HostileEhr, app_port: int, deadline: float | None) -> dict:
    """The bench's sandbox registration plus the hostile EHR; ``deadline``: ``fhir.deadline_seconds`` (None: default)."""
    document = registration(ehr.base, app_port)
    document["ehrs"].append({"name": "Hostile EHR (bench)", "iss": hostile.iss, "client_id": "imaging-app"})
    if deadline is not None:
        document["fhir"]["deadline_seconds"] = deadline
    return document


# --------------------------------------------------------------------------------------------- clients


def hostile_launch(app_base: str, iss: str) -> tuple[requests.Session, str]:
    """A standalone launch at ``iss`` driven hop by hop up to (not into) the list page: ``(session, list URL)``."""
    session = browser.browser_session()
    url = f"{app_base}/launch?{urlencode({'iss': iss})}"
    hops = []
    for _ in range(browser.MAX_HOPS):
        response = session.get(url, allow_redirects=False, timeout=30)
        browser.trust_loopback(session.cookies)
        hops.append((urlsplit(url).path, response.status_code))
        target = session.get_redirect_target(response)
        if not target:
            raise RuntimeError(f"hostile launch stopped at HTTP {response.status_code}: {hops}")
        url = urljoin(response.url, target)
        if urlsplit(url).path.startswith("/l/"):
            return session, url
    raise RuntimeError(f"hostile launch: too many redirects {hops}")


def close_app_connections(launches: list[tuple[requests.Session, str]]) -> None:
    """Close each session's kept-alive connections to the app (not the shared EHR adapter), so that a
    gthread worker need not wait out gunicorn's graceful timeout for them when the app stops."""
    for session, _ in launches:
        session.get_adapter("http://").close()


def load_list(session: requests.Session, url: str, timeout: float) -> dict:
    """GET a list page (body read): wall time, status, size, which error text it shows."""
    started = time.monotonic()
    try:
        response = session.get(url, allow_redirects=False, timeout=timeout)
        body = response.content
    except requests.RequestException as exc:
        return {"seconds": time.monotonic() - started, "status": None, "bytes": 0, "error": type(exc).__name__}
    text = body.decode("utf-8", "replace")
    return {"seconds": time.monotonic() - started, "status": response.status_code, "bytes": len(body),
            "timeout_page": TIMEOUT_TEXT in text, "too_large_page": TOO_LARGE_TEXT in text}


def _healthy_launch(ehr: Sandbox, timeout: float) -> dict:
    started = time.monotonic()
    try:
        result = browser.launch_to_list(ehr.control, HEALTHY_PATIENT, timeout=timeout)
    except (requests.RequestException, RuntimeError) as exc:
        return {"ms": (time.monotonic() - started) * 1000, "ok": False, "error": type(exc).__name__,
                "started": started}
    ok = result.status == 200 and result.patient_id == HEALTHY_PATIENT
    return {"ms": result.wall_s * 1000, "ok": ok, "status": result.status, "started": started}


def healthy_loops(ehr: Sandbox, *, per_client: int | None = None, stop: Callable[[], bool] | None = None,
                  max_seconds: float, timeout: float) -> list[dict]:
    """:data:`HEALTHY_CLIENTS` clients each running launch → list of pt-1001 back to back:
    ``per_client`` launches each, or until ``stop()``; never longer than ``max_seconds`` to start one."""
    ends = time.monotonic() + max_seconds
    out: list[dict] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(per_client or 10_000):
            if time.monotonic() >= ends or (stop is not None and stop()):
                return
            sample = _healthy_launch(ehr, timeout)
            with lock:
                out.append(sample)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(HEALTHY_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max_seconds + 3 * timeout)
    return out


def _summary_ms(samples: list[dict]) -> dict:
    walls = sorted(s["ms"] for s in samples if s["ok"])
    return {"n": len(samples), "ok": len(walls), "failures": sum(1 for s in samples if not s["ok"]),
            "median_ms": statistics.median(walls) if walls else None, "p95_ms": percentile(walls, 95),
            "max_ms": max((s["ms"] for s in samples), default=None), "samples_ms": [s["ms"] for s in samples]}


# --------------------------------------------------------------------------------------------- 1. trickle


def trickle(env: Environment, ehr: Sandbox, hostile: HostileEhr, deadline: float, log=print) -> dict:
    """16 list loads held by the trickling EHR while 2 clients launch against the sandbox."""
    document = hostile_registration(ehr, hostile, env.app_port, deadline)
    with env.gunicorn_app(document, f"hostile-trickle-{deadline:g}") as app:
        hostile.mode("small")
        launches = [hostile_launch(app.base, hostile.iss) for _ in range(TRICKLE_LOADS)]
        browser.warm_ehr(ehr.base)
        for _ in range(2 * HEALTHY_CLIENTS):  # warm both workers' pools and discovery (not counted)
            _healthy_launch(ehr, 60)
        before = healthy_loops(ehr, per_client=HEALTHY_BEFORE, max_seconds=60, timeout=60)
        hostile.mode("trickle")
        hostile.stats(reset=True)
        load_timeout = deadline * 3 + 60
        with ThreadPoolExecutor(max_workers=TRICKLE_LOADS) as pool:
            sent = time.monotonic()
            futures = [pool.submit(load_list, session, url, load_timeout) for session, url in launches]
            held_open, last_change = 0, time.monotonic()
            for _ in range(30):  # until every load holds a trickle, or none more did for 1 s (at most 3 s)
                now_open = hostile.stats()["trickles_open"]
                if now_open > held_open:
                    held_open, last_change = now_open, time.monotonic()
                if held_open >= TRICKLE_LOADS or time.monotonic() - last_change >= 1.0:
                    break
                time.sleep(0.1)
            reached = time.monotonic() - sent
            by_worker = connections_by_worker(procs.children(app.pid), env.app_port)
            during = healthy_loops(ehr, stop=lambda: all(f.done() for f in futures),
                                   max_seconds=load_timeout, timeout=load_timeout)
            loads = [f.result() for f in futures]
        close_app_connections(launches)
        stats = hostile.stats(reset=True)
        hostile.mode("small")
        after = healthy_loops(ehr, per_client=2, max_seconds=30, timeout=60)
    statuses: dict[str, int] = {}
    for load in loads:
        statuses[str(load["status"])] = statuses.get(str(load["status"]), 0) + 1
    held = sorted(load["seconds"] for load in loads)
    out = {"deadline_s": deadline, "loads": loads, "statuses": statuses, "held_max_s": held[-1],
           "held_min_s": held[0], "held_median_s": statistics.median(held), "trickles_open_at_start": held_open,
           "trickles_open_max": stats["trickles_open_max"], "app_connections_by_worker": by_worker,
           "held_over_deadline": sum(1 for x in held if x > deadline + 1.0),
           "seconds_to_hold_all": reached, "timeout_pages": sum(1 for x in loads if x.get("timeout_page")),
           "healthy_before": _summary_ms(before), "healthy_during": _summary_ms(during),
           "healthy_after": _summary_ms(after),
           "hostile_answers": [{k: a[k] for k in ("bytes_written", "seconds", "ended")} for a in stats["answers"]]}
    b, d = out["healthy_before"], out["healthy_during"]
    log(f"  trickle, deadline {deadline:g} s: {TRICKLE_LOADS} loads held {held[0]:.1f}–{held[-1]:.1f} s "
        f"(median {out['held_median_s']:.1f}), statuses {statuses}; {held_open} trickles open after "
        f"{reached:.1f} s; healthy launch → list before: median {b['median_ms']:.0f} ms p95 {b['p95_ms']:.0f} "
        f"(n {b['n']}, {b['failures']} failed); during: median {_fmt(d['median_ms'])} p95 {_fmt(d['p95_ms'])} "
        f"max {_fmt(d['max_ms'])} ms (n {d['n']}, {d['failures']} failed)")
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


# --------------------------------------------------------------------------------------------- 2. 50 MB


class RssSampler:
    """Samples ``VmRSS`` of ``pids`` every :data:`SAMPLE_SECONDS` in a thread; ``peak_kb[pid]``."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        self.peak_kb = {pid: 0 for pid in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                try:
                    self.peak_kb[pid] = max(self.peak_kb[pid], procs.memory_kb(pid)["VmRSS"])
                except OSError:
                    pass
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


def big_bundle(env: Environment, ehr: Sandbox, hostile: HostileEhr, log=print) -> dict:
    """One and four concurrent loads of a 50 MB Bundle, per variant in a fresh app; worker RSS before/peak/after."""
    out = {"variants": []}
    for variant in BIG_VARIANTS:
        document = hostile_registration(ehr, hostile, env.app_port, None)
        with env.gunicorn_app(document, f"hostile-{variant}") as app:
            workers = procs.children(app.pid)
            hostile.mode("small")
            launches = [hostile_launch(app.base, hostile.iss) for _ in range(max(BIG_CONCURRENT))]
            for _ in range(2):  # warm both workers (templates, pools) on small lists
                for session, url in launches:
                    load_list(session, url + "?refresh=1", 30)
            hostile.mode(variant)
            for concurrent in BIG_CONCURRENT:
                hostile.stats(reset=True)
                before = {pid: procs.memory_kb(pid)["VmRSS"] for pid in workers}
                peaks_reset = all(procs.reset_peak(pid) for pid in workers)
                with RssSampler(workers) as sampler, ThreadPoolExecutor(max_workers=concurrent) as pool:
                    loads = list(pool.map(lambda launch: load_list(launch[0], launch[1] + "?refresh=1", 120),
                                          launches[:concurrent]))
                hwm = {pid: procs.memory_kb(pid)["VmHWM"] for pid in workers}
                time.sleep(1.0)
                after = {pid: procs.memory_kb(pid)["VmRSS"] for pid in workers}
                answers = hostile.stats(reset=True)["answers"]
                per_worker = {str(pid): {"before_kb": before[pid],
                                         "peak_kb": max(hwm[pid] if peaks_reset else 0, sampler.peak_kb[pid]),
                                         "after_kb": after[pid]} for pid in workers}
                for figures in per_worker.values():
                    figures["increase_kb"] = max(0, figures["peak_kb"] - figures["before_kb"])
                run = {"variant": variant, "concurrent": concurrent, "loads": loads, "workers": per_worker,
                       "peak_increase_kb": max(f["increase_kb"] for f in per_worker.values()),
                       "peak_increase_total_kb": sum(f["increase_kb"] for f in per_worker.values()),
                       "after_increase_kb": sum(f["after_kb"] - f["before_kb"] for f in per_worker.values()),
                       "statuses": sorted({str(x["status"]) for x in loads}),
                       "page_bytes": max(x["bytes"] for x in loads),
                       "too_large_pages": sum(1 for x in loads if x.get("too_large_page")),
                       "seconds_max": max(x["seconds"] for x in loads), "vmhwm_reset": peaks_reset,
                       "hostile_bytes_written": [a["bytes_written"] for a in answers],
                       "hostile_ended": sorted({a["ended"] for a in answers})}
                out["variants"].append(run)
                close_app_connections(launches)
                log(f"  {variant} ×{concurrent}: statuses {run['statuses']}, page {run['page_bytes']} B, "
                    f"peak worker RSS +{run['peak_increase_kb'] / 1024:.1f} MB (all workers "
                    f"+{run['peak_increase_total_kb'] / 1024:.1f} MB), after +{run['after_increase_kb'] / 1024:.1f} "
                    f"MB, EHR wrote {', '.join(f'{b / 1e6:.1f}' for b in run['hostile_bytes_written'])} MB "
                    f"({', '.join(run['hostile_ended'])}), {run['seconds_max']:.2f} s")
            hostile.mode("small")
    return out


# --------------------------------------------------------------------------------------------- 3. pending


def _pending_client(port: int, path: str, keep_cookie: bool, deadline: float, cap: int, out: dict) -> None:
    conn = http.client.HTTPConnection(procs.HOST, port, timeout=30)
    cookie = None
    for _ in range(cap):
        if time.time() >= deadline:
            break
        headers = {"Cookie": cookie} if keep_cookie and cookie else {}
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            out["exception"] = out.get("exception", 0) + 1
            conn.close()
            continue
        key = str(response.status)
        out[key] = out.get(key, 0) + 1
        if response.status == 429 and "retry_after" not in out:
            out["retry_after"] = response.getheader("Retry-After")
        set_cookie = response.getheader("Set-Cookie")
        if set_cookie and set_cookie.startswith(browser.SESSION_COOKIE + "="):
            cookie = set_cookie.split(";", 1)[0]
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
    conn.close()


def _pending_process(args: tuple) -> list[dict]:
    port, path, keep_cookie, clients, start_at, seconds, cap = args
    time.sleep(max(0.0, start_at - time.time()))
    outs = [{} for _ in range(clients)]
    threads = [threading.Thread(target=_pending_client, args=(port, path, keep_cookie, start_at + seconds, cap,
                                                              outs[i]), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return outs


def _store_size(store: Path) -> int:
    return sum(_store_files(store).values())


def _store_files(store: Path) -> dict[str, int]:
    """Bytes of the store's files (the database, its ``-wal`` and ``-shm``)."""
    return {p.name[len(store.name):] or "db": p.stat().st_size
            for p in store.parent.glob(store.name + "*") if p.is_file()}


def connections_by_worker(workers: list[int], port: int) -> dict[str, int]:
    """Established TCP connections on the app's ``port`` held by each worker (``/proc/net/tcp`` and fds)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except OSError:
            continue
    out = {}
    for pid in workers:
        count = 0
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                count += target.startswith("socket:[") and target[8:-1] in inodes
        except OSError:
            pass
        out[str(pid)] = count
    return out


def _store_counts(store: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10) as db:
        return {status: count for status, count in
                db.execute("SELECT status, COUNT(*) FROM launches GROUP BY status")}


def pending(env: Environment, ehr: Sandbox, hostile: HostileEhr, seconds: float, log=print) -> dict:
    """16 clients for ``seconds`` on ``GET /launch?iss=<sandbox iss>``, keeping cookies, then (fresh app) not."""
    out = {"seconds": seconds, "clients": PENDING_CLIENTS, "variants": []}
    path = "/launch?" + urlencode({"iss": f"{ehr.base}/fhir"})
    for keep_cookie in (True, False):
        name = f"hostile-pending-{'cookies' if keep_cookie else 'no-cookies'}"
        document = hostile_registration(ehr, hostile, env.app_port, None)
        with env.gunicorn_app(document, name) as app:
            store = env.workdir / f"{name}.sqlite3"
            for _ in range(4):  # discovery of the sandbox in both workers (its launches are pending too)
                requests.get(env.app_origin + path, allow_redirects=False, timeout=30)
            warm_counts = _store_counts(store)
            size_before = _store_size(store)
            processes = 2
            per = [PENDING_CLIENTS // processes + (1 if i < PENDING_CLIENTS % processes else 0)
                   for i in range(processes)]
            start_at = time.time() + 1.0
            cap = max(1, PENDING_MAX_REQUESTS // PENDING_CLIENTS)
            started = time.monotonic()
            with ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn")) as pool:
                results = list(pool.map(_pending_process, [(env.app_port, path, keep_cookie, n, start_at, seconds,
                                                            cap) for n in per]))
            elapsed = time.monotonic() - started - 1.0
            clients = [c for r in results for c in r]
            counts = _store_counts(store)
            run = {"keep_cookies": keep_cookie, "elapsed_s": elapsed,
                   "accepted": sum(c.get("303", 0) for c in clients),
                   "refused_429": sum(c.get("429", 0) for c in clients),
                   "other": sum(v for c in clients for k, v in c.items() if k not in ("303", "429", "retry_after")),
                   "per_client_accepted_max": max(c.get("303", 0) for c in clients),
                   "per_client_accepted": [c.get("303", 0) for c in clients],
                   "retry_after": next((c["retry_after"] for c in clients if c.get("retry_after")), None),
                   "store_pending_before": warm_counts.get("pending", 0), "store_pending": counts.get("pending", 0),
                   "store_bytes_before": size_before, "store_bytes": _store_size(store),
                   "store_files": _store_files(store)}
            run["requests"] = run["accepted"] + run["refused_429"] + run["other"]
            out["variants"].append(run)
            log(f"  pending, {'cookies kept' if keep_cookie else 'no cookies'}: {run['requests']} requests in "
                f"{elapsed:.1f} s: {run['accepted']} × 303, {run['refused_429']} × 429, {run['other']} other; "
                f"per client at most {run['per_client_accepted_max']}; store {run['store_pending']} pending, "
                f"{run['store_bytes'] / 1e6:.2f} MB (was {size_before / 1e6:.2f})")
    return out


# --------------------------------------------------------------------------------------------- the section


def hostile_section(env: Environment, plan, ehr: Sandbox, log=print) -> dict:
    """Section 6: trickle (per deadline), 50 MB Bundle, pending launches; every app and the hostile EHR stopped."""
    out: dict = {"workers": 2, "threads": 8, "rtt_ms": plan.rtt_ms, "mode": plan.mode, "cpus": os.cpu_count()}
    with hostile_ehr(env) as hostile:
        out["trickle"] = [trickle(env, ehr, hostile, deadline, log) for deadline in plan.hostile_deadlines]
        out["big"] = big_bundle(env, ehr, hostile, log)
        out["pending"] = pending(env, ehr, hostile, plan.hostile_pending_seconds, log)
    return out
