"""The measured scenarios: the network path, launch → list (product and fhirclient baseline), histories, throughput.

Each function takes the :class:`~bench.env.Environment`, a :class:`Plan` (how
many repetitions, which sizes) and the run's sandbox EHR (TLS behind the
latency proxy, or sleeping, see :mod:`bench.env`) and returns a JSON-able dict
of raw figures; :mod:`bench.report` turns them into the table.

Floor of a launch → list (``floor_ms``), ``RTT`` being the proxy's round
trip: authorize redirect (browser ↔ EHR) + token POST + one FHIR round trip
(the Patient read and the first ImagingStudy page concurrently) + one round
trip per further page at the EHR's largest ``_count`` (1,000), i.e.
``RTT × (3 + max(0, ceil(N / 1000) − 1))``, with every connection already open
(the browser's to the EHR, the app's pool). A fresh app process adds the
discovery round trip and one new connection's TCP + TLS 1.3 handshakes (2 RTT):
``+ 3 RTT`` (in sleep mode handshakes are on loopback: ``+ 1 RTT``).
"""

from __future__ import annotations

import math
import re
import ssl
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from urllib.parse import urlencode

import requests

from . import browser, load, procs
from .env import EHR_MAX_COUNT, Environment, Sandbox, registration

LAUNCH_PATIENT = "pt-1001"  # 8 studies
EMPTY_PATIENT = "pt-1004"  # no studies: the fixed cost of a launch
HISTORY_SIZES = (10, 100, 1000, 5000, 10000)
MIX_PATIENTS = ("pt-1001", "pt-1002", "pt-1003", "pt-1005", "pt-1006", "pt-h1000", "pt-h5000")
UPSTREAM_KINDS = ("discovery", "authorize", "token", "Patient", "ImagingStudy")
APP_PEER, BROWSER_PEER = procs.HOST, browser.BROWSER_SOURCE


def history_patient(size: int) -> str:
    """The generated patient with ``size`` studies (``EXTRA_HISTORIES``)."""
    return f"pt-h{size}"


def histories() -> dict[str, int]:
    """Every generated patient the sandbox needs: the history sizes and the throughput mix."""
    return {history_patient(size): size for size in HISTORY_SIZES}


def floor_ms(rtt_ms: float, studies: int, *, cold: bool = False, handshakes: bool = True) -> float:
    """The launch → list floor for ``studies`` (see the module docstring)."""
    pages = max(1, math.ceil(studies / EHR_MAX_COUNT))
    extra = (1 + (2 if handshakes else 0)) if cold else 0
    return rtt_ms * (3 + pages - 1 + extra)


@dataclass(frozen=True)
class Plan:
    """Sizes of one run (``quick`` shrinks every loop)."""

    rtt_ms: int = 50
    mode: str = "proxy"
    cold_runs: int = 2
    warm_per_cold: int = 6
    baseline_launches: int = 5
    history_sizes: tuple[int, ...] = HISTORY_SIZES
    history_reps: int = 3
    large_reps: int = 1  # repetitions from 5,000 studies up
    baseline_sizes: tuple[int, ...] = HISTORY_SIZES
    reopens: int = 7
    launches: int = 28
    client_levels: tuple[int, ...] = (16, 64)
    level_seconds: float = 8.0
    max_requests: int = 50_000
    worker_classes: tuple[str, ...] = ("gthread", "sync")
    redis_clients: int = 64  # one level with the Redis launch store (0: skipped)
    threads: int = 8
    requeried_clients: int = 64  # TTL 0 through the proxy: how a worker class copes with waits (gthread only)
    hostile_deadlines: tuple[float, ...] = (30.0, 5.0)  # fhir.deadline_seconds of the trickle runs (30 = default)
    hostile_pending_seconds: float = 15.0

    @classmethod
    def quick(cls) -> "Plan":
        """Under a minute: fewer repetitions and sizes, 3 s load levels, gthread only."""
        return cls(cold_runs=1, warm_per_cold=3, baseline_launches=2, history_sizes=(10, 1000, 5000),
                   history_reps=1, baseline_sizes=(10, 1000), reopens=3, launches=7, client_levels=(64,),
                   level_seconds=3.0, worker_classes=("gthread",), requeried_clients=0, redis_clients=0,
                   hostile_deadlines=(5.0,), hostile_pending_seconds=5.0)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _upstream_counts(stats: dict) -> dict[str, int]:
    kinds = stats["kinds"]
    return {kind: kinds.get(kind, {}).get("count", 0) for kind in UPSTREAM_KINDS}


def _connections(ehr: Sandbox) -> dict[str, int]:
    """New connections through the proxy since the last reset: ``{"app": n, "browser": n}``."""
    accepted = ehr.connections(reset=True).get("accepted", {})
    return {"app": accepted.get(APP_PEER, 0), "browser": accepted.get(BROWSER_PEER, 0)}


# --------------------------------------------------------------------------------------------- network


def _timed_gets(base: str, count: int, session: requests.Session | None = None) -> tuple[list[float], str]:
    session = session or requests.Session()
    walls, connection = [], ""
    for _ in range(count):
        started = time.perf_counter()
        response = session.get(f"{base}/fhir/.well-known/smart-configuration", timeout=30)
        response.raise_for_status()
        walls.append((time.perf_counter() - started) * 1000)
        connection = response.headers.get("Connection", "")
    return walls, connection


def network(env: Environment, plan: Plan, ehr: Sandbox, log=print) -> dict:
    """Section 0: what one request costs on the path, and whether each sandbox server keeps connections alive.

    ``count`` sequential GETs with one ``requests.Session`` through the proxy, against the run's sandbox
    (gunicorn gthread) and a werkzeug one served like ``python -m sandbox``; the proxy counts connections.
    """
    count = 6
    out = {"rtt_ms": plan.rtt_ms, "mode": plan.mode, "servers": {}}
    with ExitStack() as stack:
        servers = {"gunicorn gthread (bench)": ehr}
        if plan.mode == "proxy":
            servers["werkzeug (python -m sandbox)"] = stack.enter_context(
                env.sandbox(plan.rtt_ms, {}, mode=plan.mode, server="werkzeug"))
        for name, sandbox in servers.items():
            sandbox.connections(reset=True)
            walls, connection = _timed_gets(sandbox.base, count)
            accepted = sandbox.connections(reset=True).get("accepted_total")
            out["servers"][name] = {"requests": count, "connections": accepted, "connection_header": connection,
                                    "first_ms": walls[0], "next_ms": statistics.median(walls[1:])}
            log(f"  {name}: {count} requests on one session → {accepted} connection(s), Connection: "
                f"{connection or '-'}; first {walls[0]:.0f} ms, then {statistics.median(walls[1:]):.0f} ms")
    host, port = ehr.base.split("//")[1].split(":")
    context = ssl.create_default_context()
    import socket

    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls_socket:
            out["tls_version"] = tls_socket.version()
    return out


# --------------------------------------------------------------------------------------------- launches


QUIET_SECONDS = 0.5  # no worker CPU tick and no ImagingStudy page for this long after the last page: settled


def _settle(ehr: Sandbox, pid: int, pages: int, timeout: float = 120.0) -> float:
    """Wait until the sandbox has answered ``pages`` ImagingStudy pages since its last reset and the app
    worker's CPU time (``/proc/<pid>/stat``, 10 ms ticks) has not moved for :data:`QUIET_SECONDS` (the
    background loader has decoded, summarised and stored the last page); seconds waited."""
    started = time.monotonic()
    last_cpu, last_change = procs.cpu_seconds([pid]), time.monotonic()
    while time.monotonic() - started < timeout:
        time.sleep(0.05)
        cpu = procs.cpu_seconds([pid])
        if cpu != last_cpu:
            last_cpu, last_change = cpu, time.monotonic()
            continue
        if time.monotonic() - last_change >= QUIET_SECONDS \
                and ehr.stats(reset=False)["kinds"].get("ImagingStudy", {}).get("count", 0) >= pages:
            break
    return time.monotonic() - started


def expected_pages(size: int, page_size: int = EHR_MAX_COUNT, max_pages: int = 20, max_studies: int = 10_000) -> int:
    """ImagingStudy pages the app reads for a history of ``size`` studies (the bench's registration)."""
    return max(1, min(max_pages, -(-min(size, max_studies) // page_size)))


def _one_launch(ehr: Sandbox, app, patient: str, session=None, settle_pages: int | None = None) -> dict:
    """A launch to the list, with the app's per-hop records, the sandbox's counts and the proxy's connections.

    With ``settle_pages`` (the history section), the launch also waits for the background loader to have
    read that many ImagingStudy pages and gone quiet (:func:`_settle`), and adds ``app_cpu_all_ms`` (the
    worker process's CPU, every thread, from before the launch to settled: launch, callback, list and the
    background pages with their store writes) and ``peak_all_delta_kb`` (VmHWM then − VmRSS before);
    ``app_cpu_ms`` / ``peak_delta_kb`` stay the first-paint figures (the three requests' own CPU, the peak
    when the list page arrived)."""
    ehr.stats(reset=True)
    ehr.connections(reset=True)
    app.records(reset=True)
    procs.reset_peak(app.worker_pid)
    rss_before = procs.memory_kb(app.worker_pid)["VmRSS"]
    cpu_before = procs.cpu_seconds([app.worker_pid])
    result = browser.launch_to_list(ehr.control, patient, session)
    if result.status != 200 or result.patient_id != patient:
        raise RuntimeError(f"launch for {patient} ended with HTTP {result.status} ({result.hops})")
    peak = procs.memory_kb(app.worker_pid)["VmHWM"]
    settled = {}
    if settle_pages is not None:
        waited = _settle(ehr, app.worker_pid, settle_pages)
        settled = {"app_cpu_all_ms": (procs.cpu_seconds([app.worker_pid]) - cpu_before) * 1000,
                   "peak_all_delta_kb": max(0, procs.memory_kb(app.worker_pid)["VmHWM"] - rss_before),
                   "settle_wait_s": waited}
    stats = ehr.stats(reset=True)
    records = [r for r in app.records(reset=True) if r["kind"] in ("launch", "callback", "list")]
    return {"wall_ms": result.wall_s * 1000, "studies": result.studies, "list_url": result.list_url,
            "hops": [{"path": p if not p.startswith("/l/") else "/l/<id>/", "status": s, "ms": t * 1000}
                     for p, s, t in result.hops],
            "upstream": _upstream_counts(stats), "connections": _connections(ehr),
            "sandbox_ms": {k: v["wall_s"] * 1000 / v["count"] for k, v in stats["kinds"].items()
                           if k in UPSTREAM_KINDS and v["count"]},
            "app_cpu_ms": sum(r["cpu_s"] for r in records) * 1000,
            "app_work_ms": sum(r["app_work_s"] for r in records) * 1000,
            "app_by_hop_ms": {r["kind"]: r["app_work_s"] * 1000 for r in records},
            "peak_delta_kb": max(0, peak - rss_before), "html_bytes": result.html_bytes, **settled}


def _summary(samples: list[dict]) -> dict:
    """Median wall time, the sample nearest to it, and the connection totals of all samples."""
    walls = [s["wall_ms"] for s in samples]
    median = statistics.median(walls)
    typical = min(samples, key=lambda s: abs(s["wall_ms"] - median))
    return {"n": len(samples), "median_ms": median, "min_ms": min(walls), "max_ms": max(walls),
            "samples_ms": walls, "upstream": typical["upstream"], "typical": typical,
            "app_connections": sum(s["connections"]["app"] for s in samples),
            "browser_connections": sum(s["connections"]["browser"] for s in samples)}


def launch_latency(env: Environment, plan: Plan, ehr: Sandbox, log=print) -> dict:
    """Section 1: launches of pt-1001 (8 studies): product (cold fresh process, then warm) and baseline."""
    browser.warm_ehr(ehr.base)
    document = registration(ehr.base, env.app_port)
    colds, warms, processes = [], [], []
    for run in range(plan.cold_runs):
        with env.instrumented_app(document, f"launch-{run}") as app:
            cold = _one_launch(ehr, app, LAUNCH_PATIENT)
            mine = [_one_launch(ehr, app, LAUNCH_PATIENT) for _ in range(plan.warm_per_cold)]
        colds.append(cold)
        warms += mine
        processes.append({"launches": 1 + len(mine),
                          "app_connections": cold["connections"]["app"] + sum(w["connections"]["app"] for w in mine)})
        log(f"  product process {run + 1}/{plan.cold_runs}: cold {cold['wall_ms']:.0f} ms, warm "
            + ", ".join(f"{w['wall_ms']:.0f}" for w in mine) + f" ms; app connections {processes[-1]['app_connections']}")
    with env.instrumented_app(document, "launch-baseline", baseline=True) as app:
        baseline = [_one_launch(ehr, app, LAUNCH_PATIENT) for _ in range(plan.baseline_launches + 1)]
    log("  baseline (fhirclient): " + ", ".join(f"{b['wall_ms']:.0f}" for b in baseline) + " ms")
    return {"rtt_ms": plan.rtt_ms, "mode": plan.mode, "patient": LAUNCH_PATIENT, "studies": 8,
            "floor_ms": floor_ms(plan.rtt_ms, 8),
            "cold_floor_ms": floor_ms(plan.rtt_ms, 8, cold=True, handshakes=plan.mode == "proxy"),
            "cold": _summary(colds), "warm": _summary(warms), "processes": processes,
            "baseline_first": baseline[0]["wall_ms"], "baseline": _summary(baseline[1:])}


def _reopen_ms(session, url: str, count: int) -> float:
    """Median ms to re-open a list page (body read), served from the launch's cache."""
    walls = []
    for _ in range(count):
        started = time.perf_counter()
        response, _ = browser.follow(session, url)
        if response.status_code != 200:
            raise RuntimeError(f"re-open answered HTTP {response.status_code}")
        walls.append((time.perf_counter() - started) * 1000)
    return statistics.median(walls)


def _selected_url(session, url: str) -> str | None:
    """The list URL with its middle row's study selected (``?study=<id>``: not the list's default view, so the
    app renders its rows for every request), ``None`` when the list is empty."""
    response, _ = browser.follow(session, url)
    ids = re.findall(r'data-study-id="([^"]+)"', response.text)
    return f"{url.split('?')[0]}?{urlencode({'study': ids[len(ids) // 2]})}" if ids else None


def _history_series(env: Environment, plan: Plan, ehr: Sandbox, sizes, baseline: bool, log) -> list[dict]:
    """One warm app process: the empty patient, then each size (ascending), ``reps`` launches each."""
    document = registration(ehr.base, env.app_port)
    name = "baseline" if baseline else "product"
    runs = []
    with env.instrumented_app(document, f"history-{name}", baseline=baseline) as app:
        browser.launch_to_list(ehr.control, LAUNCH_PATIENT)  # warm: discovery, templates, pools
        empty = [_one_launch(ehr, app, EMPTY_PATIENT, settle_pages=1) for _ in range(2)]
        fixed_cpu = statistics.median(e["app_cpu_ms"] for e in empty)
        fixed_mem = statistics.median(e["peak_delta_kb"] for e in empty)
        fixed_cpu_all = statistics.median(e["app_cpu_all_ms"] for e in empty)
        fixed_mem_all = statistics.median(e["peak_all_delta_kb"] for e in empty)
        for size in sorted(sizes):
            patient = history_patient(size)
            reps = plan.large_reps if size >= 5000 else plan.history_reps
            samples = []
            for _ in range(reps):
                session = browser.browser_session()
                samples.append(_one_launch(ehr, app, patient, session, settle_pages=expected_pages(size)))
            reopen = _reopen_ms(session, samples[-1]["list_url"], plan.reopens) if not baseline else None
            selected_url = _selected_url(session, samples[-1]["list_url"]) if not baseline else None
            reopen_selected = _reopen_ms(session, selected_url, plan.reopens) if selected_url else None
            walls = [s["wall_ms"] for s in samples]
            cpu = statistics.median(s["app_cpu_ms"] for s in samples)
            cpu_all = statistics.median(s["app_cpu_all_ms"] for s in samples)
            peak_all = max(s["peak_all_delta_kb"] for s in samples)
            run = {"app": name, "size": size, "patient": patient, "studies": samples[-1]["studies"],
                   "n": reps, "median_ms": statistics.median(walls), "samples_ms": walls,
                   "floor_ms": floor_ms(plan.rtt_ms, size), "pages": samples[-1]["upstream"]["ImagingStudy"],
                   "app_cpu_ms": cpu, "fixed_cpu_ms": fixed_cpu,
                   "first_paint_cpu_us_per_study": max(0.0, cpu - fixed_cpu) * 1000 / size,
                   "app_cpu_all_ms": cpu_all, "fixed_cpu_all_ms": fixed_cpu_all,
                   "cpu_us_per_study": max(0.0, cpu_all - fixed_cpu_all) * 1000 / size,
                   "first_paint_peak_delta_kb": max(s["peak_delta_kb"] for s in samples),
                   "first_paint_kb_per_study": max(0.0, max(s["peak_delta_kb"] for s in samples) - fixed_mem) / size,
                   "peak_delta_kb": peak_all, "fixed_peak_kb": fixed_mem_all,
                   "kb_per_study": max(0.0, peak_all - fixed_mem_all) / size,
                   "settle_wait_s": statistics.median(s["settle_wait_s"] for s in samples),
                   "reopen_ms": reopen, "reopen_selected_ms": reopen_selected, "app_work_ms": statistics.median(s["app_work_ms"] for s in samples),
                   "connections": {"app": sum(s["connections"]["app"] for s in samples),
                                   "browser": sum(s["connections"]["browser"] for s in samples)},
                   "html_bytes": samples[-1]["html_bytes"]}
            runs.append(run)
            log(f"  {name} {size:>5} studies ({run['studies']} listed, {run['pages']} page(s)): launch → list "
                f"{run['median_ms']:.0f} ms (floor {run['floor_ms']:.0f}), CPU {run['cpu_us_per_study']:.0f} µs/study, "
                f"peak {run['kb_per_study']:.2f} KB/study"
                + (f", re-open {reopen:.1f} ms" if reopen is not None else "")
                + (f" (a study selected: {reopen_selected:.1f} ms)" if reopen_selected is not None else "")
                + f", app connections {run['connections']['app']}")
    return runs


def large_history(env: Environment, plan: Plan, ehr: Sandbox, log=print) -> dict:
    """Section 2: histories of ``plan.history_sizes`` studies, product and baseline, in warm processes."""
    browser.warm_ehr(ehr.base)
    product = _history_series(env, plan, ehr, plan.history_sizes, False, log)
    baseline = _history_series(env, plan, ehr, plan.baseline_sizes, True, log)
    return {"rtt_ms": plan.rtt_ms, "mode": plan.mode, "product": product, "baseline": baseline,
            "cpu_source": "CPU (utime + stime, /proc/<pid>/stat, every thread) of the app worker process from before "
                          "the launch until its background loader has read every ImagingStudy page and gone quiet "
                          f"({QUIET_SECONDS} s without a CPU tick), minus that of a launch of the 0-study patient, "
                          "divided by the studies: the app's own CPU only (the sandbox, the proxy and the bench "
                          "browser are other processes), all pages with their store writes included; "
                          "first_paint_cpu_us_per_study: the launch, callback and list requests' process_time only",
            "memory_source": "VmHWM (reset via /proc/<pid>/clear_refs before the launch) once the list is settled − "
                             "VmRSS before, minus that of the 0-study patient, divided by the studies; max over "
                             "repetitions (first_paint_kb_per_study: VmHWM when the list page arrived)"}


# --------------------------------------------------------------------------------------------- throughput


def _authorised_launches(ehr: Sandbox, count: int) -> list[load.Target]:
    """``count`` launches across the mix of patients, each with its own cookie jar, followed to the list."""
    def one(index: int) -> load.Target:
        patient = MIX_PATIENTS[index % len(MIX_PATIENTS)]
        result = browser.launch_to_list(ehr.control, patient)
        if result.status != 200 or result.patient_id != patient or not result.cookie:
            raise RuntimeError(f"launch {index} for {patient} failed: HTTP {result.status}")
        return load.Target(f"/l/{result.launch_id}/", f"{browser.SESSION_COOKIE}={result.cookie}",
                           result.launch_id, patient)

    with ThreadPoolExecutor(max_workers=6) as pool:
        return list(pool.map(one, range(count)))


def _warm(app_base: str, targets: list[load.Target], refresh: bool) -> None:
    """Open every launch once (with ``refresh=1``: re-cache now, so a TTL cannot expire mid-level)."""
    with requests.Session() as session:
        for target in targets:
            url = app_base + target.path + ("?refresh=1" if refresh else "")
            response = session.get(url, headers={"Cookie": target.cookie}, timeout=60)
            response.raise_for_status()


def _measure_level(env: Environment, ehr: Sandbox, app, targets: list[load.Target], clients: int,
                   plan: Plan) -> dict:
    """One load level: requests/s, latencies, errors, mismatches, upstream requests and connections, CPU."""
    workers = procs.children(app.pid)
    server_pids = [app.pid, *workers]
    ehr.stats(reset=True)
    ehr.connections(reset=True)
    sandbox_pids = [ehr.pid, *procs.children(ehr.pid)]  # gunicorn arbiter and its worker
    server_cpu, sandbox_cpu = procs.cpu_seconds(server_pids), procs.cpu_seconds(sandbox_pids)
    result = load.run_level(procs.HOST, env.app_port, targets, clients, plan.level_seconds, plan.max_requests)
    server_cpu = procs.cpu_seconds(server_pids) - server_cpu
    sandbox_cpu = procs.cpu_seconds(sandbox_pids) - sandbox_cpu
    proxy = ehr.connections(reset=True)
    open_app = {c["port"] for c in proxy.get("open", []) if c["peer"] == APP_PEER}
    owners = procs.socket_owners(workers, open_app)
    by_worker = {str(pid): sum(1 for p in owners.values() if p == pid) for pid in workers}
    kinds = ehr.stats(reset=True)["kinds"]
    fhir = sum(kinds.get(k, {}).get("count", 0) for k in ("Patient", "ImagingStudy"))
    fhir_cpu = sum(kinds.get(k, {}).get("cpu_s", 0.0) for k in ("Patient", "ImagingStudy"))
    duration = result["duration_s"]
    result.update(
        sandbox_requests=fhir,
        sandbox_requests_per_page=fhir / result["requests"] if result["requests"] else 0.0,
        sandbox_cpu_ms_per_request=fhir_cpu * 1000 / fhir if fhir else 0.0,
        new_app_connections=proxy.get("accepted", {}).get(APP_PEER, 0), open_app_connections_by_worker=by_worker,
        cpu_share={"app": server_cpu / duration, "sandbox": sandbox_cpu / duration,
                   "generator": result["generator_cpu_s"] / duration},
        worker_peak_rss_kb=[procs.memory_kb(pid)["VmHWM"] for pid in workers])
    return result


def throughput(env: Environment, plan: Plan, ehr: Sandbox, log=print) -> dict:
    """Sections 3–5: gunicorn (2 workers) with ``plan.launches`` launches of the mix (up to 5,000 studies):
    re-opened lists (TTL 60, cached) per worker class, then TTL 0 (re-queried through the proxy), gthread."""
    configs = [(worker_class, 60, plan.client_levels, "sqlite") for worker_class in plan.worker_classes]
    if plan.redis_clients:
        configs.append(("gthread", 60, (plan.redis_clients,), "redis"))
    if plan.requeried_clients:
        configs.append(("gthread", 0, (plan.requeried_clients,), "sqlite"))
    levels = []
    for worker_class, ttl, client_levels, store in configs:
        document = registration(ehr.base, env.app_port, ttl_seconds=ttl)
        name = f"gunicorn-{worker_class}-ttl{ttl}-{store}"
        with env.redis() if store == "redis" else nullcontext(None) as store_url:
            if store == "redis" and store_url is None:
                log("  redis-server not installed: the Redis store level is not measured")
                continue
            levels.extend(_levels(env, plan, ehr, document, name, worker_class, ttl, client_levels, store, store_url,
                                  log))
    return {"levels": levels, "patients": list(MIX_PATIENTS), "level_seconds": plan.level_seconds}


def _levels(env, plan, ehr, document, name, worker_class, ttl, client_levels, store, store_url, log) -> list[dict]:
    """The levels of one app configuration (one gunicorn, one store)."""
    levels = []
    with env.gunicorn_app(document, name, worker_class=worker_class, threads=plan.threads,
                          store_url=store_url) as app:
        targets = _authorised_launches(ehr, plan.launches)
        cached_at = time.monotonic()
        for clients in client_levels:
            # re-cache (refresh=1) when half the TTL has gone, so that it cannot expire mid-level
            refresh = ttl > 0 and time.monotonic() - cached_at + plan.level_seconds > ttl / 2
            _warm(app.base, targets, refresh=refresh)
            cached_at = time.monotonic() if refresh else cached_at
            result = _measure_level(env, ehr, app, targets, clients, plan)
            result.update(worker_class=worker_class, ttl_seconds=ttl, rtt_ms=plan.rtt_ms, store=store,
                          launches=len(targets), threads=plan.threads if worker_class == "gthread" else 1)
            levels.append(result)
            log(f"  {worker_class} TTL {ttl:>2} {clients:>2} clients: {result['rps']:.0f} req/s, p50 "
                f"{result['p50_ms']:.1f} p95 {result['p95_ms']:.1f} p99 {result['p99_ms']:.1f} ms, errors "
                f"{result['errors']}, mismatches {result['mismatches']}, EHR {result['sandbox_requests_per_page']:.2f}"
                f" req/page, new app connections {result['new_app_connections']}, store {store}")
    return levels


def profile_runs(env: Environment, ehr: Sandbox, profile_dir) -> list[tuple[str, str]]:
    """cProfile files (label, path) of a warm launch's three app requests, and of the 1,000-study launch's."""
    profiles = []
    browser.warm_ehr(ehr.base)
    with env.instrumented_app(registration(ehr.base, env.app_port), "profile", profile_dir=profile_dir) as app:
        browser.launch_to_list(ehr.control, LAUNCH_PATIENT)  # cold: not shown
        for patient in (LAUNCH_PATIENT, history_patient(1000)):
            app.records(reset=True)
            browser.launch_to_list(ehr.control, patient)
            for record in app.records(reset=True):
                if record["profile"]:
                    profiles.append((f"warm launch of {patient}, {record['kind']} request", record["profile"]))
    return profiles
