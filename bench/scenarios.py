"""The measured scenarios: launch to list against the physical limit, large histories, throughput under gunicorn.

Each function takes the :class:`~bench.env.Environment` and a :class:`Plan`
(how many repetitions, which sizes) and returns a JSON-able dict of raw
figures; :mod:`bench.report` turns them into the table.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass

import requests

from . import browser, load, procs
from .env import LARGE_HISTORY, LARGE_PATIENT, Environment, registration

LAUNCH_PATIENT = "pt-1001"
MIX_PATIENTS = ("pt-1001", "pt-1002", "pt-1003", "pt-1004", "pt-1005", "pt-1006")
HISTORY_PATIENTS = (("pt-1003", 250), (LARGE_PATIENT, LARGE_HISTORY))
UPSTREAM_KINDS = ("discovery", "authorize", "token", "Patient", "ImagingStudy")


@dataclass(frozen=True)
class Plan:
    """Sizes of one run (``quick`` shrinks every loop)."""

    latency_ms: int = 50
    cold_runs: int = 3
    warm_per_cold: int = 5
    page_sizes: tuple[int, ...] = (100, 200, 1000)
    history_latencies: tuple[int, ...] = (0, 50)
    history_fetches: int = 4
    launches: int = 32
    client_levels: tuple[int, ...] = (16, 64)
    level_seconds: float = 10.0
    max_requests: int = 50_000
    worker_classes: tuple[str, ...] = ("gthread", "sync")
    threads: int = 8
    ttls: tuple[int, ...] = (60, 0)
    remote_clients: tuple[int, ...] = (64,)  # TTL 0, EHR at ``latency_ms``: how a worker class copes with waits

    @classmethod
    def quick(cls) -> "Plan":
        """About a minute: fewer repetitions, two page sizes, 3 s load levels, gthread only."""
        return cls(cold_runs=1, warm_per_cold=3, page_sizes=(200, 1000), history_fetches=2, launches=12,
                   level_seconds=3.0, worker_classes=("gthread",))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _upstream_counts(stats: dict) -> dict[str, int]:
    kinds = stats["kinds"]
    return {kind: kinds.get(kind, {}).get("count", 0) for kind in UPSTREAM_KINDS}


def _sandbox_own_ms(stats: dict, kinds=UPSTREAM_KINDS) -> dict[str, float]:
    """Mean sandbox cost per request by kind: wall minus injected latency, and thread CPU."""
    latency = stats["latency_ms"]
    out = {}
    for kind in kinds:
        entry = stats["kinds"].get(kind)
        if entry and entry["count"]:
            out[kind] = {"wall_minus_latency_ms": entry["wall_s"] * 1000 / entry["count"] - latency,
                         "cpu_ms": entry["cpu_s"] * 1000 / entry["count"]}
    return out


def _one_launch(ehr, app, patient: str) -> dict:
    """A launch to the list, with the app's per-hop split and the sandbox's counts for it."""
    ehr.stats(reset=True)
    app.records(reset=True)
    result = browser.launch_to_list(ehr.base, patient)
    if result.status != 200 or result.patient_id != patient:
        raise RuntimeError(f"launch for {patient} ended with HTTP {result.status} ({result.hops})")
    stats = ehr.stats(reset=True)
    return {"wall_ms": result.wall_s * 1000, "hops": [{"path": p if not p.startswith("/l/") else "/l/<id>/",
                                                       "status": s, "ms": t * 1000} for p, s, t in result.hops],
            "upstream": _upstream_counts(stats), "sandbox_own": _sandbox_own_ms(stats),
            "sandbox_wall_ms": {k: v["wall_s"] * 1000 / v["count"] for k, v in stats["kinds"].items()
                                if k in UPSTREAM_KINDS and v["count"]},
            "app": [{k: r[k] for k in ("kind", "wall_s", "upstream_wait_s", "app_work_s", "cpu_s",
                                       "upstream_calls")} for r in app.records(reset=True)],
            "studies": result.studies}


def _summarise_launches(samples: list[dict]) -> dict:
    """Median wall time and the sample nearest to it (its hop breakdown explains the figure)."""
    walls = [s["wall_ms"] for s in samples]
    median = statistics.median(walls)
    typical = min(samples, key=lambda s: abs(s["wall_ms"] - median))
    app_work = sum(r["app_work_s"] for r in typical["app"]) * 1000
    return {"n": len(samples), "median_ms": median, "min_ms": min(walls), "max_ms": max(walls),
            "samples_ms": walls, "upstream": typical["upstream"], "typical": typical,
            "app_work_ms": app_work}


def launch_latency(env: Environment, plan: Plan, log=print) -> dict:
    """Section 1: launches of pt-1001 at ``plan.latency_ms``, each app process giving three kinds.

    *cold, fresh process*: the first launch of a new app process (discovery
    cache empty, and every first-use cost: templates, pools, imports);
    *warm*: the next launches in that process; *cold iss, warm process*: then
    the first launch from a second sandbox EHR registered in the same app
    (discovery cache empty for that ``iss`` only).
    """
    latency = plan.latency_ms
    colds, warms, cold_iss = [], [], []
    with env.sandbox(latency) as ehr, env.sandbox(latency) as other_ehr:
        for run in range(plan.cold_runs):
            document = registration(ehr.base, env.app_port, more_ehr_bases=(other_ehr.base,))
            with env.instrumented_app(document, f"launch-{run}") as app:
                colds.append(_one_launch(ehr, app, LAUNCH_PATIENT))
                for _ in range(plan.warm_per_cold):
                    warms.append(_one_launch(ehr, app, LAUNCH_PATIENT))
                cold_iss.append(_one_launch(other_ehr, app, LAUNCH_PATIENT))
            recent = ", ".join(f"{w['wall_ms']:.0f}" for w in warms[-plan.warm_per_cold:])
            log(f"  app process {run + 1}/{plan.cold_runs}: cold {colds[-1]['wall_ms']:.0f} ms, warm {recent} ms, "
                f"cold iss {cold_iss[-1]['wall_ms']:.0f} ms")
    warm_limit = 3 * latency
    return {"latency_ms": latency, "patient": LAUNCH_PATIENT, "warm_limit_ms": warm_limit,
            "cold_limit_ms": warm_limit + latency, "cold": _summarise_launches(colds),
            "warm": _summarise_launches(warms), "cold_iss": _summarise_launches(cold_iss)}


def _list_request(session, url: str) -> float:
    """Seconds to GET a list page (body included); raises unless it answers 200."""
    started = time.perf_counter()
    response, _ = browser.follow(session, url)
    if response.status_code != 200:
        raise RuntimeError(f"list answered HTTP {response.status_code}")
    return time.perf_counter() - started


def _history_run(ehr, app, patient: str, expected: int, fetches: int) -> dict:
    """A launch, then ``fetches`` timed refreshes (each re-queries every page), then 3 cached re-opens.

    The launch's own first open is the same code path as a refresh; it is not
    timed here (section 1 times launches). Memory: the peak over all of it.
    """
    procs.reset_peak(app.worker_pid)
    rss_before = procs.memory_kb(app.worker_pid)["VmRSS"]
    session = browser.browser_session()
    first = browser.launch_to_list(ehr.base, patient, session)
    if first.studies != expected:
        raise RuntimeError(f"{patient}: {first.studies} studies listed, expected {expected}")
    ehr.stats(reset=True)
    app.records(reset=True)
    list_walls = [_list_request(session, first.list_url + "?refresh=1") for _ in range(fetches)]
    fetched = [r for r in app.records(reset=True) if r["kind"] == "list"]
    stats = ehr.stats(reset=True)
    reopen_walls = [_list_request(session, first.list_url) for _ in range(3)]
    reopened = [r for r in app.records(reset=True) if r["kind"] == "list"]
    memory = procs.memory_kb(app.worker_pid)
    pages = stats["kinds"].get("ImagingStudy", {}).get("count", 0) / max(1, len(fetched))
    return {
        "patient": patient, "studies": first.studies, "pages": pages, "html_bytes": first.html_bytes,
        "total_ms": _ms(statistics.median(list_walls)), "total_samples_ms": [_ms(w) for w in list_walls],
        "app_work_ms": _ms(statistics.median(r["app_work_s"] for r in fetched)),
        "upstream_wait_ms": _ms(statistics.median(r["upstream_wait_s"] for r in fetched)),
        "app_cpu_ms": _ms(statistics.median(r["cpu_s"] for r in fetched)),
        "reopen_ms": _ms(statistics.median(reopen_walls)),
        "reopen_app_work_ms": _ms(statistics.median(r["app_work_s"] for r in reopened)),
        "reopen_upstream_calls": sum(r["upstream_calls"] for r in reopened),
        "sandbox_own_per_page": _sandbox_own_ms(stats, ("ImagingStudy",)).get("ImagingStudy"),
        "rss_before_kb": rss_before, "peak_rss_kb": memory["VmHWM"],
    }


def large_history(env: Environment, plan: Plan, log=print) -> dict:
    """Section 2: pt-1003 (250) and pt-2001 (1,000) at each latency and ``_count``, one app process each."""
    runs = []
    for latency in plan.history_latencies:
        with env.sandbox(latency) as ehr:
            for page_size in plan.page_sizes:
                document = registration(ehr.base, env.app_port, page_size=page_size)
                with env.instrumented_app(document, f"history-{latency}-{page_size}") as app:
                    browser.launch_to_list(ehr.base, LAUNCH_PATIENT)  # warm: discovery, templates, pools
                    for patient, expected in HISTORY_PATIENTS:
                        run = _history_run(ehr, app, patient, expected, plan.history_fetches)
                        run.update(latency_ms=latency, page_size=page_size)
                        runs.append(run)
                        log(f"  {patient} latency {latency} ms _count {page_size}: {run['pages']:.0f} page(s), "
                            f"total {run['total_ms']:.0f} ms, app work {run['app_work_ms']:.0f} ms, "
                            f"peak RSS {run['peak_rss_kb'] / 1024:.0f} MB")
    return {"runs": runs, "memory_source": "VmHWM of the app process (/proc/<pid>/status), reset per patient "
                                           "via /proc/<pid>/clear_refs"}


def _authorised_launches(ehr, count: int) -> list[load.Target]:
    """``count`` launches across the mix of patients, each with its own cookie jar, followed to the list.

    Made 8 at a time (each takes several EHR round trips when the sandbox has latency).
    """
    def one(index: int) -> load.Target:
        patient = MIX_PATIENTS[index % len(MIX_PATIENTS)]
        result = browser.launch_to_list(ehr.base, patient)
        if result.status != 200 or result.patient_id != patient or not result.cookie:
            raise RuntimeError(f"launch {index} for {patient} failed: HTTP {result.status}")
        return load.Target(f"/l/{result.launch_id}/", f"{browser.SESSION_COOKIE}={result.cookie}",
                           result.launch_id, patient)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def _warm(app_base: str, targets: list[load.Target], refresh: bool) -> None:
    """Open every launch once (with ``refresh=1``: re-cache now, so a TTL cannot expire mid-level)."""
    with requests.Session() as session:
        for target in targets:
            url = app_base + target.path + ("?refresh=1" if refresh else "")
            response = session.get(url, headers={"Cookie": target.cookie}, timeout=30)
            response.raise_for_status()


def _measure_level(env: Environment, ehr, app, targets: list[load.Target], clients: int, plan: Plan) -> dict:
    """One load level: requests/s, latencies, errors, mismatches, sandbox requests and everyone's CPU."""
    server_pids = [app.pid, *procs.children(app.pid)]
    ehr.stats(reset=True)
    server_cpu, sandbox_cpu = procs.cpu_seconds(server_pids), procs.cpu_seconds([ehr.pid])
    result = load.run_level(procs.HOST, env.app_port, targets, clients, plan.level_seconds, plan.max_requests)
    server_cpu = procs.cpu_seconds(server_pids) - server_cpu
    sandbox_cpu = procs.cpu_seconds([ehr.pid]) - sandbox_cpu
    kinds = ehr.stats(reset=True)["kinds"]
    fhir = sum(kinds.get(k, {}).get("count", 0) for k in ("Patient", "ImagingStudy"))
    fhir_cpu = sum(kinds.get(k, {}).get("cpu_s", 0.0) for k in ("Patient", "ImagingStudy"))
    duration = result["duration_s"]
    result.update(
        sandbox_requests=fhir,
        sandbox_requests_per_page=fhir / result["requests"] if result["requests"] else 0.0,
        sandbox_cpu_ms_per_request=fhir_cpu * 1000 / fhir if fhir else 0.0,
        cpu_share={"app": server_cpu / duration, "sandbox": sandbox_cpu / duration,
                   "generator": result["generator_cpu_s"] / duration},
        worker_peak_rss_kb=[procs.memory_kb(pid)["VmHWM"] for pid in server_pids[1:]])
    return result


def throughput(env: Environment, plan: Plan, log=print) -> dict:
    """Sections 3–5: gunicorn (2 workers) with ``plan.launches`` launches, per worker class:
    TTL 60 and TTL 0 with the EHR at 0 ms (16 and 64 clients), then TTL 0 with the EHR at ``plan.latency_ms``."""
    configs = [(ttl, 0, plan.client_levels) for ttl in plan.ttls]
    if plan.remote_clients:
        configs.append((0, plan.latency_ms, plan.remote_clients))
    levels = []
    with ExitStack() as stack:
        sandboxes = {latency: stack.enter_context(env.sandbox(latency)) for latency in {c[1] for c in configs}}
        for worker_class in plan.worker_classes:
            for ttl, latency, client_levels in configs:
                ehr = sandboxes[latency]
                document = registration(ehr.base, env.app_port, ttl_seconds=ttl)
                name = f"gunicorn-{worker_class}-ttl{ttl}-{latency}ms"
                with env.gunicorn_app(document, name, worker_class=worker_class, threads=plan.threads) as app:
                    targets = _authorised_launches(ehr, plan.launches)
                    for clients in client_levels:
                        _warm(app.base, targets, refresh=ttl > 0)
                        result = _measure_level(env, ehr, app, targets, clients, plan)
                        result.update(worker_class=worker_class, ttl_seconds=ttl, latency_ms=latency,
                                      launches=len(targets), threads=plan.threads if worker_class == "gthread" else 1)
                        levels.append(result)
                        log(f"  {worker_class} TTL {ttl:>2} EHR {latency:>2} ms {clients:>2} clients: "
                            f"{result['rps']:.0f} req/s, p50 {result['p50_ms']:.1f} p95 {result['p95_ms']:.1f} "
                            f"p99 {result['p99_ms']:.1f} ms, errors {result['errors']}, mismatches "
                            f"{result['mismatches']}, sandbox {result['sandbox_requests_per_page']:.2f} req/page")
    return {"levels": levels, "patients": list(MIX_PATIENTS), "level_seconds": plan.level_seconds}


def profile_runs(env: Environment, profile_dir) -> list[tuple[str, str]]:
    """cProfile files (label, path) of a warm launch's three app requests at 50 ms latency, and of the
    1,000-study list at 0 ms latency (default ``_count``): one fetch of every page, one cached re-open."""
    profiles = []
    with env.sandbox(50) as ehr:
        with env.instrumented_app(registration(ehr.base, env.app_port), "profile-launch",
                                  profile_dir=profile_dir) as app:
            browser.launch_to_list(ehr.base, LAUNCH_PATIENT)  # cold: not shown
            app.records(reset=True)
            browser.launch_to_list(ehr.base, LAUNCH_PATIENT)
            for record in app.records(reset=True):
                if record["profile"]:
                    label = f"warm launch of {LAUNCH_PATIENT}, {record['kind']} request"
                    profiles.append((label, record["profile"]))
    with env.sandbox(0) as ehr:
        with env.instrumented_app(registration(ehr.base, env.app_port), "profile-list",
                                  profile_dir=profile_dir) as app:
            browser.launch_to_list(ehr.base, LAUNCH_PATIENT)  # warm
            session = browser.browser_session()
            first = browser.launch_to_list(ehr.base, LARGE_PATIENT, session)
            app.records(reset=True)
            _list_request(session, first.list_url + "?refresh=1")
            _list_request(session, first.list_url)
            fetched, reopened = [r for r in app.records(reset=True) if r["kind"] == "list"]
    profiles.append((f"{LARGE_PATIENT} list, fetch of every page (refresh=1)", fetched["profile"]))
    profiles.append((f"{LARGE_PATIENT} list, re-open served from the launch's cache", reopened["profile"]))
    return profiles
