"""``make bench``: measure the app against the sandbox EHR and print one table with targets.

Usage: ``.venv/bin/python bench/run.py [--quick] [--only network|launch|history|throughput|hostile ...]
[--latency-mode proxy|sleep] [--rtt-ms 50] [--profile]``

The sandbox EHR runs once per run (gunicorn gthread, TLS with a throwaway CA,
histories of 10 to 10,000 studies), behind a latency-injecting TCP proxy
(``--latency-mode proxy``, the headline; ``sleep`` is the old in-sandbox
``LATENCY_MS`` sleep without a proxy). Sections: 0 the network path
(keep-alive of the sandbox's server, werkzeug's included; cost of a new
connection); 1 launch → list of an 8-study patient against the floor, product
and fhirclient baseline, requests and connections; 2 histories of 10 to 10,000
studies: launch → list, app CPU and peak memory per study, re-open time,
baseline; 3 throughput under gunicorn with 16 and 64 clients; 4 correctness
under load; 5 cached vs re-queried lists; 6 a hostile EHR registered beside the sandbox
(trickling search, 50 MB Bundle, pending-launch flood; :mod:`bench.hostile`). Writes
``bench/results/<timestamp>.json`` (every raw figure), ``<timestamp>.png``
(launch time against history size) and ``latest.md`` / ``latest.png``
(runs with ``--quick``, ``--only``, ``--level-seconds``, ``--rtt-ms`` or
``--latency-mode sleep`` write ``latest-partial.*`` instead). All traffic
stays on loopback; each server runs in its own process, stopped at the end
(also on Ctrl-C or an error). Benchmarks print figures; they never fail on
timing (exit 1 only if a scenario broke).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # import bench.* as a package (and never bench/*.py as top-level modules)

from bench import chart, hostile, procs, report, scenarios, thumbnails  # noqa: E402
from bench.env import Environment  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SECTIONS = ("network", "launch", "history", "throughput", "hostile", "thumbnails")


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip() or "?"
    except OSError:
        return "?"


def _meta(args, started: float) -> dict:
    return {"date": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)), "cpus": os.cpu_count(),
            "python": platform.python_version(), "platform": platform.platform(), "commit": _commit(),
            "quick": args.quick, "sections": args.only or list(SECTIONS), "latency_mode": args.latency_mode,
            "rtt_ms": args.rtt_ms}


def _profiles(env: Environment, ehr) -> str:
    """Top functions (own time, then cumulative) of the profiled requests, as text."""
    import io
    import pstats

    profile_dir = env.workdir / "profiles"
    profile_dir.mkdir(exist_ok=True)
    out = io.StringIO()
    for label, stats_file in scenarios.profile_runs(env, ehr, profile_dir):
        out.write(f"\n--- cProfile: {label} (CPU time of the request's thread, time.thread_time, inflated by "
                  "profiling; that thread only) ---\n")
        for order in ("tottime", "cumulative"):
            stats = pstats.Stats(str(stats_file), stream=out)
            stats.sort_stats(order).print_stats(25)
    return out.getvalue()


def notes(results: dict) -> list[str]:
    """What the reader needs to interpret the table (printed under it and kept in the JSON)."""
    cores = os.cpu_count()
    out = ["Notes:",
           f"- {cores} CPU cores are shared by the sandbox EHR, the latency proxy, the app and the load generator "
           "(and, on this machine, other people's work); section 3 shows each one's CPU in cores.",
           "- Network path: app / baseline / bench browser → bench/proxy.py (asyncio TCP proxy on loopback: every "
           "chunk delayed RTT/2 each way, a new connection's first bytes held one extra RTT for the TCP handshake) "
           "→ the sandbox EHR under gunicorn (1 gthread worker, keep-alive 600 s) with TLS from a throwaway CA "
           "(bench/tls.py) that the app processes trust via REQUESTS_CA_BUNDLE/SSL_CERT_FILE; iss = "
           "https://localhost:<proxy port>/fhir. Bandwidth and TCP slow start are not modelled.",
           "- Floor of launch → list = RTT × (authorize + token + one FHIR round trip (Patient and the first "
           "ImagingStudy page concurrently) + one per further page at the EHR's largest _count, 1,000) with the "
           "browser's and the app's connections already open; a fresh process adds the discovery round trip and one "
           "new connection's TCP and TLS 1.3 handshakes (3 RTT). The bench registers the app with page_size 1000 "
           "(smart-launch.json ships 200, which needs 5× the pages and caps a list at 4,000 studies).",
           "- Baseline (bench/baseline_app.py): fhirclient as its docs show (FHIRClient per request from the Flask "
           "session state, authorize_url (metadata fetched every launch), handle_callback, Patient.read, "
           "ImagingStudy.where(...).perform_resources following next links), with the same _count as the product; "
           "instrumented and served like the product (gunicorn, 1 gthread worker).",
           "- Sections 1-2: the app runs under gunicorn (1 gthread worker, instrumented: bench/app_server.py), one "
           "request at a time; app work = the app's wall time minus the union of its outbound request intervals; "
           "CPU per study (section 2) = (the app worker process's CPU, every thread, from before the launch until "
           "its background loader has read every ImagingStudy page and been quiet 0.5 s − the same for a 0-study "
           "patient) / studies: the app's own CPU, all pages and their store writes, not the sandbox's, the proxy's "
           "or the bench browser's (other processes); 'to first paint' = the launch, callback and list requests' "
           "own process_time; memory per study = (peak RSS rise over the launch and every page − that of the "
           "0-study launch) / studies, peak = VmHWM reset before each launch (sizes run ascending; freed memory "
           "the allocator keeps is not counted again). bench/decode.py breaks one page down by stage.",
           "- A re-opened list (sections 2 and 3) is the list's default view (no filter, no study selected): each "
           "worker keeps the decoded list, its indexes and that view's rendered HTML for the minute "
           "(app/launches/list_cache.py, app/web/list_index.py), so it costs the small launch record and the bytes; "
           "with a study selected (?study=<id>, section 2's second re-open figure) its rows are rendered per request. "
           "The first re-open on a worker that has not decoded the list yet opens the store's list record "
           "(bench/reopen.py prints that figure).",
           "- Section 3 is closed-loop without think time: mean latency = clients / throughput (Little's law), "
           f"so p99 < {report.P99_TARGET_MS:.0f} ms with {report.TARGET_CLIENTS} clients needs more than "
           f"{report.TARGET_CLIENTS / (report.P99_TARGET_MS / 1000):.0f} req/s."]
    if "hostile" in results:
        out.append("- Section 6 (bench/hostile.py): the production command, gunicorn --workers 2 --threads 8 "
                   "'app:create_app()', registered with the run's sandbox and bench/hostile_ehr.py (plain HTTP on "
                   "127.0.0.1, its own process; standalone launches straight back to the app's callback with iss, "
                   "a token with patient); the bench's registration (page_size 1000, read_timeout 30, TTL 60) with "
                   "max_page_bytes (8 MiB), max_studies and the pending caps (20 per browser, 5,000) at the app's "
                   "defaults, fhir.deadline_seconds at 30 (the default) and 5. "
                   "Trickle: 16 list loads of completed launches at once while 2 clients loop healthy launch → "
                   "list against the sandbox, compared with the same loop just before. 50 MB: one then four "
                   "concurrent ?refresh=1 loads per variant, a fresh app per variant; peak = max(VmHWM after a "
                   "clear_refs reset, VmRSS sampled every 10 ms) − VmRSS before, per worker. Pending: 16 clients "
                   "(2 processes × 8 threads, http.client keep-alive) on GET /launch?iss=<sandbox iss>, a fresh app "
                   "per variant; pending rows counted in the store (SQLite, read-only).")
    others = {name: usage["other_cores"] for name, usage in results.get("machine", {}).items()}
    if any(value > 0.3 for value in others.values()):
        out.append("- WARNING: processes outside the bench used CPU during the run ("
                   + ", ".join(f"{n} {v:.2f} cores" for n, v in others.items())
                   + "); the figures include that interference. Re-run on a quiet machine.")
    return out


def _run_section(name: str, env: Environment, plan: scenarios.Plan, ehr, results: dict) -> bool:
    """Run one section into ``results[name]`` (or ``results[name + "_error"]``); record how busy the machine was."""
    steps = {"network": scenarios.network, "launch": scenarios.launch_latency, "history": scenarios.large_history,
             "throughput": scenarios.throughput, "hostile": hostile.hostile_section,
             "thumbnails": thumbnails.thumbnails_section}
    print(f"\n== {name} ==", flush=True)
    started, machine, load_before = time.monotonic(), procs.MachineLoad(), os.getloadavg()[0]
    ok = True
    try:
        results[name] = steps[name](env, plan, ehr, log=lambda text: print(text, flush=True))
    except Exception as exc:  # report and go on: the other sections still give figures
        ok = False
        results[f"{name}_error"] = "".join(traceback.format_exception(exc))
        print(f"  {name} failed: {exc}\n{results[f'{name}_error']}", file=sys.stderr, flush=True)
        for log_file in sorted(env.workdir.glob("*.log")):
            tail = log_file.read_text(errors="replace")[-2000:]
            if tail.strip():
                print(f"  --- {log_file.name} (tail) ---\n{tail}", file=sys.stderr)
    busy, others = machine.busy_cores()
    usage = {"seconds": time.monotonic() - started, "busy_cores": busy, "other_cores": others,
             "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0]}
    results.setdefault("machine", {})[name] = usage
    print(f"  ({usage['seconds']:.0f} s; CPU busy {busy:.2f} of {os.cpu_count()} cores, of which "
          f"{others:.2f} by processes outside the bench)", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections, print the table, write the JSON and markdown files."""
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and 3 s load levels (~1 min)")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    parser.add_argument("--level-seconds", type=float, help="seconds per load level (default 8, quick 3)")
    parser.add_argument("--latency-mode", choices=("proxy", "sleep"), default="proxy",
                        help="proxy: RTT injected by bench/proxy.py over TLS (default); sleep: the sandbox's own "
                             "LATENCY_MS, no proxy")
    parser.add_argument("--rtt-ms", type=int, default=50, help="round trip to the EHR (default 50)")
    parser.add_argument("--profile", action="store_true",
                        help="also print cProfile of a warm launch's requests and of the 1,000-study list")
    args = parser.parse_args(argv)
    plan = scenarios.Plan.quick() if args.quick else scenarios.Plan()
    if args.level_seconds:
        plan = scenarios.Plan(**{**plan.__dict__, "level_seconds": min(max(args.level_seconds, 1.0), 60.0)})
    plan = scenarios.Plan(**{**plan.__dict__, "rtt_ms": min(max(args.rtt_ms, 0), 1000), "mode": args.latency_mode})
    started = time.time()
    print(f"bench: {os.cpu_count()} CPU cores; servers (sandbox, app) and the load generator share them, "
          "so every figure includes that competition.", flush=True)
    results: dict = {}
    failures, profile_text = [], ""
    with tempfile.TemporaryDirectory(prefix="imaging-bench-") as scratch:
        env = Environment(Path(scratch), procs.free_port())
        print(f"sandbox EHR: TLS, {plan.mode} mode, RTT {plan.rtt_ms} ms, histories "
              + ", ".join(str(n) for n in scenarios.HISTORY_SIZES) + " (building...)", flush=True)
        try:
            with env.sandbox(plan.rtt_ms, scenarios.histories(), mode=plan.mode) as ehr:
                for name in args.only or SECTIONS:
                    if not _run_section(name, env, plan, ehr, results):
                        failures.append(name)
                if args.profile:
                    print("\n== profile ==", flush=True)
                    profile_text = _profiles(env, ehr)
        except Exception as exc:  # the sandbox or proxy did not start: report it like a failed section
            results["environment_error"] = "".join(traceback.format_exception(exc))
            failures.append("environment")
            print(results["environment_error"], file=sys.stderr)
            for log_file in sorted(Path(scratch).glob("*.log")):
                tail = log_file.read_text(errors="replace")[-2000:]
                if tail.strip():
                    print(f"  --- {log_file.name} (tail) ---\n{tail}", file=sys.stderr)
    meta = _meta(args, started)
    meta["duration_s"] = time.time() - started
    rows = report.build_rows(results) + thumbnails.rows(results)
    table = report.text_table(rows)
    if profile_text:
        print(profile_text)
    print("\n" + table)
    print("\n" + "\n".join(notes(results)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(started))
    json_path = RESULTS / f"{stamp}.json"
    json_path.write_text(json.dumps({"meta": meta, "plan": plan.__dict__, "rows": report.rows_as_dicts(rows),
                                     "notes": notes(results), "results": results}, indent=1, default=str),
                         encoding="utf-8")
    # latest.md (for the README) only from a complete run; --quick/--only runs write latest-partial.md
    partial = bool(args.quick or args.only or args.level_seconds or args.rtt_ms != 50 or args.latency_mode != "proxy")
    md_name = "latest-partial.md" if partial else "latest.md"
    (RESULTS / md_name).write_text(report.markdown_table(rows, meta, notes(results)), encoding="utf-8")
    written = [str(json_path.relative_to(ROOT)), f"bench/results/{md_name}"]
    if "history" in results:
        png = json_path.with_suffix(".png")
        title = (f"Launch → list against history size ({plan.mode}, RTT {plan.rtt_ms} ms, "
                 f"{meta['date']}, commit {meta['commit']})")
        if chart.launch_chart(results["history"], png, title):
            latest_png = RESULTS / ("latest-partial.png" if partial else "latest.png")
            latest_png.write_bytes(png.read_bytes())
            written += [str(png.relative_to(ROOT)), str(latest_png.relative_to(ROOT))]
        else:
            print("(no chart: matplotlib missing; install the bench extra)", file=sys.stderr)
    print(f"\nWrote {', '.join(written)} ({meta['duration_s']:.0f} s).")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
