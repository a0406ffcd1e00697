"""Turn scenario results into one table (terminal and markdown) with targets and a met/missed column.

Targets (from the issue "Launch time that does not grow with the patient's
history"; they guide the work, they never fail the run):

* launch → list ≤ 1.05 × the floor (:func:`bench.scenarios.floor_ms`) at every history size;
* product / fhirclient baseline ≤ 0.5 × for 8 and 1,000 studies;
* app CPU ≤ 20 µs per study, peak memory ≤ 2 KB per study, re-opened list ≤ 5 ms at any size;
* ≥ 1,500 re-opened lists/s at p99 < 50 ms with 64 clients on 2 cores, patients up to 5,000 studies in the mix;
* at most one new connection per upstream origin per worker across launches.

Hostile EHR (section 6, from the penetration test's findings): healthy launches unaffected by a
trickling EHR (≤ 1.1 × their normal time, 0 failures); a trickling list load held ≤ deadline + 1 s
(and answered 504); peak worker RSS increase ≤ 64 MB for a 50 MB Bundle (answered 502); at most 20
pending launches accepted from one cookie-keeping client (and at most 5,000 in all).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .scenarios import QUIET_SECONDS, UPSTREAM_KINDS, floor_ms

FLOOR_FACTOR = 1.05
RATIO_TARGET = 0.5
RATIO_SIZES = (8, 1000)
CPU_TARGET_US = 20.0
MEM_TARGET_KB = 2.0
REOPEN_TARGET_MS = 5.0
RPS_TARGET = 1500.0
P99_TARGET_MS = 50.0
TARGET_CLIENTS = 64
HEALTHY_FACTOR = 1.1
HELD_SLACK_S = 1.0
BIG_RSS_TARGET_MB = 64.0
PENDING_PER_BROWSER = 20
PENDING_TOTAL = 5000


@dataclass
class Row:
    """One line of the table: ``status`` is ``met``, ``missed`` (with what) or ``—`` (no target).

    ``result`` is the figure judged against ``target``; ``details`` explains it (printed last on the line).
    """

    section: str
    measure: str
    result: str
    target: str
    status: str
    details: str = ""


def _status(checks: dict[str, bool]) -> str:
    if not checks:
        return "—"
    missed = [name for name, ok in checks.items() if not ok]
    if not missed:
        return "met"
    return "missed" if len(checks) == 1 else f"missed ({', '.join(missed)})"


def _counts(counts: dict[str, int], names: bool = True) -> str:
    return ", ".join(f"{kind} {counts.get(kind, 0)}" if names else str(counts.get(kind, 0)) for kind in UPSTREAM_KINDS)


def _path(data: dict) -> str:
    if data.get("mode") == "sleep":
        return f"sandbox sleeps {data['rtt_ms']} ms per response, no proxy"
    return f"RTT {data['rtt_ms']} ms via the proxy, TLS"


def network_rows(data: dict) -> list[Row]:
    """Section 0: keep-alive of each sandbox server, and what a request costs on a fresh and a kept connection."""
    section = f"0. Network path ({_path(data)}; {data.get('tls_version', '?')})"
    rtt = data["rtt_ms"]
    rows = []
    for name, server in data["servers"].items():
        judged = "bench" in name
        rows.append(Row(section, f"sandbox on {name}: {server['requests']} requests, one client session",
                        f"{server['connections']} connection(s)", "1" if judged else "—",
                        _status({"keep-alive": server["connections"] == 1}) if judged else "—",
                        f"response header Connection: {server['connection_header'] or '-'}; first request "
                        f"{server['first_ms']:.0f} ms, then median {server['next_ms']:.0f} ms"))
    bench = next((s for n, s in data["servers"].items() if "bench" in n), None)
    if bench and data.get("mode") == "proxy":
        rows.append(Row(section, "request on a new / a kept-alive connection",
                        f"{bench['first_ms']:.0f} / {bench['next_ms']:.0f} ms", f"≈ {3 * rtt} / {rtt} ms", "—",
                        "new = TCP handshake (1 RTT) + TLS 1.3 handshake (1 RTT) + request (1 RTT), + CPU"))
    return rows


def _vs_floor(median: float, floor: float) -> str:
    return f"{median:.0f} ms = {median / floor:.2f} × floor {floor:.0f}"


def launch_rows(data: dict) -> list[Row]:
    """Section 1 rows: 8-study launches, product cold and warm, baseline, ratio, requests and connections."""
    section = f"1. Launch → list, {data['patient']} ({data['studies']} studies; {_path(data)})"
    floor, cold_floor = data["floor_ms"], data["cold_floor_ms"]
    warm, cold, baseline = data["warm"], data["cold"], data["baseline"]
    rows = [
        Row(section, "product, warm process", _vs_floor(warm["median_ms"], floor),
            f"≤ {FLOOR_FACTOR * floor:.0f} ms", _status({"floor": warm["median_ms"] <= FLOOR_FACTOR * floor}),
            f"median of {warm['n']} (min {warm['min_ms']:.0f}, max {warm['max_ms']:.0f}); floor = authorize + token "
            "+ one FHIR round trip, connections open"),
        Row(section, "product, cold (fresh process)", _vs_floor(cold["median_ms"], cold_floor),
            f"≤ {FLOOR_FACTOR * cold_floor:.0f} ms",
            _status({"floor": cold["median_ms"] <= FLOOR_FACTOR * cold_floor}),
            f"median of {cold['n']}; floor = warm floor + discovery + one new connection's TCP and TLS handshakes"),
        Row(section, "baseline (fhirclient), each launch", f"{baseline['median_ms']:.0f} ms = "
            f"{baseline['median_ms'] / floor:.2f} × floor", "—", "—",
            f"median of {baseline['n']} after a first one ({data['baseline_first']:.0f} ms); metadata on every "
            "launch, a new requests.Session (connection) per request"),
    ]
    ratio = warm["median_ms"] / baseline["median_ms"]
    rows.append(Row(section, "product / baseline", f"{ratio:.2f} ×", f"≤ {RATIO_TARGET} ×",
                    _status({"ratio": ratio <= RATIO_TARGET}), "warm product median / baseline median"))
    expected_cold = {"discovery": 1, "authorize": 1, "token": 1, "Patient": 1, "ImagingStudy": 1}
    expected_warm = {**expected_cold, "discovery": 0}
    for key, expected in (("cold", expected_cold), ("warm", expected_warm)):
        counts = data[key]["upstream"]
        rows.append(Row(section, f"upstream requests, {key}", _counts(counts, names=False),
                        _counts(expected, names=False), _status({"count": counts == expected}),
                        f"{_counts(counts)} (counted in the sandbox)"))
    if data.get("mode") == "proxy":
        per_process = [p["app_connections"] for p in data["processes"]]
        launches = data["processes"][0]["launches"]
        rows.append(Row(section, f"new app connections to the EHR per process ({launches} launches, 1 worker)",
                        ", ".join(str(n) for n in per_process), "≤ 1", _status({"conn": max(per_process) <= 1}),
                        "counted by the proxy (source 127.0.0.1); warm launches: "
                        f"{warm['app_connections']} in {warm['n']}; baseline: {baseline['app_connections']} in "
                        f"{baseline['n']} launches; the bench browser: {warm['browser_connections']} (kept alive)"))
    typical = warm["typical"]
    sandbox = sum(typical["sandbox_ms"].get(k, 0.0) for k in ("authorize", "token")) + max(
        (typical["sandbox_ms"].get(k, 0.0) for k in ("Patient", "ImagingStudy")), default=0.0)
    if data.get("mode") == "sleep":  # the sandbox's own sleep is the injected latency, part of the floor
        sandbox -= 3 * data["rtt_ms"]
    over = typical["wall_ms"] - floor
    hops = typical["app_by_hop_ms"]
    rows.append(Row(section, "product, warm: time above the floor", f"+{over:.0f} ms", "—", "—",
                    f"app work {typical['app_work_ms']:.1f} (launch {hops.get('launch', 0):.1f}, callback "
                    f"{hops.get('callback', 0):.1f}, list {hops.get('list', 0):.1f}) + sandbox handling on the "
                    f"critical path {sandbox:.1f} + the rest {over - typical['app_work_ms'] - sandbox:.1f} ms (HTTP "
                    "and TLS stacks, the proxy's scheduling, the bench browser's hops; typical launch)"))
    return rows


def history_rows(data: dict) -> list[Row]:
    """Section 2 rows: per history size, launch → list against the floor and the baseline, CPU, memory, re-open."""
    section = f"2. Histories (warm processes; {_path(data)}; _count 1000)"
    baseline = {run["size"]: run for run in data["baseline"]}
    rows = []
    for run in data["product"]:
        # the page is sent after the first ImagingStudy page: its floor is the 3 round trips whatever the history
        # (the floor of the whole list, with one round trip per further page, is beside the complete-list time)
        size, floor = run["size"], floor_ms(data["rtt_ms"], 1)
        checks = {"floor": run["median_ms"] <= FLOOR_FACTOR * floor}
        details = [f"median of {run['n']}", f"{run['pages']} ImagingStudy page(s)",
                   f"{run['studies']} on the first page shown"]
        target = f"≤ {FLOOR_FACTOR * floor:.0f} ms"
        if run.get("settle_wait_s") is not None and run["pages"] > 1:
            complete = run["median_ms"] + (run["settle_wait_s"] - QUIET_SECONDS) * 1000
            details.append(f"every page in the list after about {complete:.0f} ms = "
                           f"{complete / run['floor_ms']:.2f} × that floor ({run['floor_ms']:.0f} ms)")
        other = baseline.get(size)
        if other:
            ratio = run["median_ms"] / other["median_ms"]
            details.append(f"baseline {other['median_ms']:.0f} ms, product/baseline {ratio:.2f} ×")
            if size in RATIO_SIZES:
                target += f" · ≤ {RATIO_TARGET} × baseline"
                checks["ratio"] = ratio <= RATIO_TARGET
        rows.append(Row(section, f"{size:,} studies: launch → list (first page shown)", _vs_floor(run["median_ms"], floor),
                        target,
                        _status(checks), " · ".join(details)))
        rows.append(Row(section, f"{size:,} studies: app CPU", f"{run['cpu_us_per_study']:.0f} µs/study",
                        f"≤ {CPU_TARGET_US:.0f} µs/study", _status({"cpu": run["cpu_us_per_study"] <= CPU_TARGET_US}),
                        f"{run.get('app_cpu_all_ms', run['app_cpu_ms']):.1f} ms for the launch and every page − "
                        f"{run.get('fixed_cpu_all_ms', run['fixed_cpu_ms']):.1f} ms for 0 studies (worker process CPU)"
                        + (f"; to first paint {run['first_paint_cpu_us_per_study']:.0f} µs/study"
                           if "first_paint_cpu_us_per_study" in run else "")
                        + (f"; baseline {other['cpu_us_per_study']:.0f} µs/study" if other else "")))
        rows.append(Row(section, f"{size:,} studies: peak memory", f"{run['kb_per_study']:.2f} KB/study",
                        f"≤ {MEM_TARGET_KB:.0f} KB/study", _status({"mem": run["kb_per_study"] <= MEM_TARGET_KB}),
                        f"peak RSS +{run['peak_delta_kb'] / 1024:.1f} MB over the launch and every page (0 studies: "
                        f"+{run['fixed_peak_kb'] / 1024:.1f} MB)"
                        + (f"; to first paint {run['first_paint_kb_per_study']:.2f} KB/study"
                           if "first_paint_kb_per_study" in run else "")
                        + (f"; baseline {other['kb_per_study']:.2f} KB/study" if other else "")))
        rows.append(Row(section, f"{size:,} studies: re-opened list", f"{run['reopen_ms']:.1f} ms",
                        f"≤ {REOPEN_TARGET_MS:.0f} ms", _status({"reopen": run["reopen_ms"] <= REOPEN_TARGET_MS}),
                        f"median of the bench browser's GETs of the cached list (body read; its default view, "
                        f"kept rendered for the minute); HTML {run['html_bytes'] / 1e6:.2f} MB"))
        if run.get("reopen_selected_ms") is not None:
            rows.append(Row(section, f"{size:,} studies: re-opened list, a study selected",
                            f"{run['reopen_selected_ms']:.1f} ms", f"≤ {REOPEN_TARGET_MS:.0f} ms",
                            _status({"reopen": run["reopen_selected_ms"] <= REOPEN_TARGET_MS}),
                            "?study=<id>: not the kept default view: the page is rendered per request around its "
                            "rows' kept HTML (app/web/row_html.py)"))
    for size in sorted(set(baseline) - {run["size"] for run in data["product"]}):
        other = baseline[size]
        rows.append(Row(section, f"{size:,} studies: baseline launch → list", _vs_floor(other["median_ms"],
                        other["floor_ms"]), "—", "—", f"median of {other['n']}"))
    return rows


def throughput_rows(data: dict) -> list[Row]:
    """Sections 3–5 rows."""
    rows = []
    section = (f"3. Throughput (gunicorn, 2 workers; {data['level_seconds']:.0f} s per level; "
               f"{len(data['patients'])}-patient mix up to 5,000 studies)")
    for level in data["levels"]:
        kind = "cached, re-opened" if level["ttl_seconds"] else "re-queried through the proxy"
        shape = f"{level['worker_class']} 2×{level['threads']}" if level["worker_class"] == "gthread" \
            else f"{level['worker_class']} 2"
        if level.get("store", "sqlite") != "sqlite":
            shape += f" · {level['store']} store"
        checks, target = {}, "—"
        if level["clients"] == TARGET_CLIENTS and level["ttl_seconds"]:
            target = f"≥ {RPS_TARGET:.0f} req/s · p99 < {P99_TARGET_MS:.0f} ms"
            checks = {"req/s": level["rps"] >= RPS_TARGET, "p99": (level["p99_ms"] or 1e9) < P99_TARGET_MS}
        share = level["cpu_share"]
        by_worker = level.get("open_app_connections_by_worker") or {}
        rows.append(Row(
            section, f"{shape} · TTL {level['ttl_seconds']} ({kind}) · {level['clients']} clients",
            f"{level['rps']:.0f} req/s · p99 {level['p99_ms']:.0f} ms", target, _status(checks),
            f"p50 {level['p50_ms']:.1f} · p95 {level['p95_ms']:.1f} ms · {level['errors']} errors · "
            f"{level['requests']} pages · CPU: app {share['app']:.2f}, sandbox {share['sandbox']:.2f}, "
            f"load generator {share['generator']:.2f} cores · new app connections to the EHR "
            f"{level['new_app_connections']} (open at the end, by worker: "
            f"{', '.join(str(v) for v in by_worker.values()) or '-'})"))
    for level in data["levels"]:
        by_patient = {p: v for p, v in (level.get("by_patient") or {}).items() if v["requests"]}
        if level["clients"] == TARGET_CLIENTS and level["ttl_seconds"] and by_patient \
                and level.get("store", "sqlite") == "sqlite":
            slowest = max(by_patient, key=lambda p: by_patient[p]["p50_ms"])
            label = f"{level['worker_class']} · TTL {level['ttl_seconds']} · {level['clients']} clients, by patient"
            rows.append(Row(
                section, label, f"slowest {slowest}: p50 {by_patient[slowest]['p50_ms']:.0f} ms", "—", "—",
                "p50/p99 ms: " + ", ".join(f"{p} {v['p50_ms']:.0f}/{v['p99_ms']:.0f}" for p, v in by_patient.items())))
    total = sum(level["requests"] for level in data["levels"])
    mismatches = sum(level["mismatches"] for level in data["levels"])
    rows.append(Row("4. Correctness under load", "pages naming another launch or patient",
                    f"{mismatches} of {total}", "0", _status({"mismatch": mismatches == 0}),
                    "data-launch-id and data-patient-id of div.app checked on every 200 page, every level"))
    for ttl in sorted({level["ttl_seconds"] for level in data["levels"]}, reverse=True):
        levels = [level for level in data["levels"] if level["ttl_seconds"] == ttl]
        pages = sum(level["requests"] for level in levels)
        per_page = sum(level["sandbox_requests"] for level in levels) / max(1, pages)
        if ttl:
            result = f"from the launch's cache: {per_page:.3f} EHR req/page"
            details = f"{pages} page views, {sum(level['sandbox_requests'] for level in levels)} sandbox requests"
        else:
            sandbox_s = sum(level["cpu_share"]["sandbox"] * level["duration_s"] for level in levels)
            app_s = sum(level["cpu_share"]["app"] * level["duration_s"] for level in levels)
            fhir = sum(level["sandbox_requests"] for level in levels)
            cpu_ms = sum(level["sandbox_cpu_ms_per_request"] * level["sandbox_requests"]
                         for level in levels) / max(1, fhir)
            result = f"re-queried: {per_page:.2f} EHR req/page"
            details = (f"Patient + ImagingStudy page(s) per view; sandbox: {cpu_ms:.1f} ms CPU per request in its "
                       f"handler, {sandbox_s * 1000 / max(1, pages):.1f} ms per page view in its whole process = "
                       f"{sandbox_s / max(1e-9, sandbox_s + app_s):.0%} of the CPU spent serving lists (app + sandbox)")
        rows.append(Row("5. Re-opened list", f"study_list_ttl_seconds = {ttl}", result, "—", "—", details))
    return rows


def _ms_or_dash(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def hostile_rows(data: dict) -> list[Row]:
    """Section 6 rows: trickle (per deadline), 50 MB Bundle (per variant and concurrency), pending launches."""
    section = (f"6. Hostile EHR (gunicorn --workers {data['workers']} --threads {data['threads']} "
               "'app:create_app()'; sandbox + hostile EHR registered)")
    rows = []
    for run in data.get("trickle", []):
        deadline, loads = run["deadline_s"], run["loads"]
        statuses = ", ".join(f"{n} × {s}" for s, n in sorted(run["statuses"].items()))
        all_504 = run["statuses"].get("504", 0) == len(loads)
        label = "default" if deadline == 30 else "short run"
        by_worker = "/".join(str(v) for v in run.get("app_connections_by_worker", {}).values()) or "?"
        rows.append(Row(
            section, f"trickle (16-byte chunk / 5 s), deadline_seconds {deadline:g} ({label}): {len(loads)} list "
            "loads at once, each held", f"max {run['held_max_s']:.1f} s (median {run['held_median_s']:.1f}, min "
            f"{run['held_min_s']:.1f}); {statuses}", f"≤ {deadline + HELD_SLACK_S:g} s · 504",
            _status({"held": run["held_max_s"] <= deadline + HELD_SLACK_S, "504": all_504}),
            f"{run['held_over_deadline']} of {len(loads)} held > deadline + 1 s; at most {run['trickles_open_max']} "
            f"trickles open at once; the loads' connections by worker {by_worker} (2 × 8 threads: a worker's "
            f"9th and later wait for a thread); 'did not answer in time' page {run['timeout_pages']} of "
            f"{len(loads)}"))
        before, during = run["healthy_before"], run["healthy_during"]
        checks = {"failures": during["failures"] == 0 and during["n"] > 0}
        ratio = p95_ratio = None
        if before["median_ms"] and during["median_ms"]:
            ratio = during["median_ms"] / before["median_ms"]
            checks["median"] = ratio <= HEALTHY_FACTOR
        if before["p95_ms"] and during["p95_ms"]:
            p95_ratio = during["p95_ms"] / before["p95_ms"]
            checks["p95"] = p95_ratio <= HEALTHY_FACTOR
        slow = None
        if before["max_ms"] and during["max_ms"] is not None:
            checks["max"] = during["max_ms"] <= HEALTHY_FACTOR * before["max_ms"]
            slow = sum(1 for ms in during["samples_ms"] if ms > HEALTHY_FACTOR * before["max_ms"])
        result = (f"median {_ms_or_dash(during['median_ms'])} ms"
                  + (f" = {ratio:.2f} × normal" if ratio is not None else "")
                  + f", max {_ms_or_dash(during['max_ms'])} ms; {during['failures']} of {during['n']} failed")
        rows.append(Row(
            section, f"trickle, deadline_seconds {deadline:g}: healthy launch → list meanwhile (2 clients)", result,
            f"median, p95, max ≤ {HEALTHY_FACTOR} × normal · 0 failures", _status(checks),
            f"during: p95 {_ms_or_dash(during['p95_ms'])}"
            + (f" = {p95_ratio:.2f} ×" if p95_ratio is not None else "")
            + (f"; {slow} of {during['n']} slower than 1.1 × the normal max, "
               f"slowest {during['max_ms'] / 1000:.1f} s (starved: a launch whose connection a worker with all 8 "
               "threads held took waits for one of them)" if slow else "")
            + "; normal (same app, before the trickle): median "
            f"{_ms_or_dash(before['median_ms'])}, p95 {_ms_or_dash(before['p95_ms'])}, max "
            f"{_ms_or_dash(before['max_ms'])} ms, {before['failures']} of {before['n']} failed; after: median "
            f"{_ms_or_dash(run['healthy_after']['median_ms'])} ms"))
    for run in data.get("big", {}).get("variants", []):
        kind = "no length, chunked" if run["variant"] == "big-chunked" else "Content-Length announced"
        n = run["concurrent"]
        rss = run["peak_increase_kb"] / 1024
        ok_pages = run["statuses"] == ["502"] and run["too_large_pages"] == n
        written = run["hostile_bytes_written"]
        rows.append(Row(
            section, f"50 MB Bundle ({kind}), {n} concurrent load{'s' if n > 1 else ''}: peak worker RSS",
            f"+{rss:.1f} MB; {n} × {'/'.join(run['statuses'])}, page {run['page_bytes']:,} B",
            f"≤ +{BIG_RSS_TARGET_MB:.0f} MB · 502", _status({"rss": rss <= BIG_RSS_TARGET_MB, "502": ok_pages}),
            f"both workers +{run['peak_increase_total_kb'] / 1024:.1f} MB; RSS after (1 s later) "
            f"{run['after_increase_kb'] / 1024:+.1f} MB; 'more than the app accepts' page {run['too_large_pages']} "
            f"of {n}, slowest {run['seconds_max'] * 1000:.0f} ms; the EHR wrote at most {max(written) / 1e6:.1f} MB "
            f"of {50:.0f} MB before the app hung up (kernel socket buffers included)"
            + ("" if run["vmhwm_reset"] else "; VmHWM not reset: sampled VmRSS only")))
    pending = data.get("pending")
    for run in (pending or {}).get("variants", []):
        keep = run["keep_cookies"]
        files = ", ".join(f"{k} {v / 1e6:.2f}" for k, v in sorted(run.get("store_files", {}).items()))
        if keep:
            target, checks = f"≤ {PENDING_PER_BROWSER} per client", {
                "per client": run["per_client_accepted_max"] <= PENDING_PER_BROWSER}
        else:
            target, checks = f"≤ {PENDING_TOTAL:,} in all", {"total": run["store_pending"] <= PENDING_TOTAL}
        rows.append(Row(
            section, f"pending launches, {pending['clients']} clients × {pending['seconds']:g} s, "
            f"{'each keeping its cookie' if keep else 'dropping cookies'}",
            f"{run['accepted']:,} × 303, {run['refused_429']:,} × 429; at most {run['per_client_accepted_max']} "
            "per client", target, _status(checks),
            f"{run['requests']:,} requests in {run['elapsed_s']:.1f} s, {run['other']} other; store: "
            f"{run['store_pending']:,} pending ({run['store_pending_before']} from the warm-up), "
            f"{run['store_bytes'] / 1e6:.2f} MB ({files} MB; {run['store_bytes_before'] / 1e6:.2f} MB before); "
            f"Retry-After {run['retry_after'] or '-'} s"))
    return rows


def build_rows(results: dict) -> list[Row]:
    """Every row, in section order, for whatever sections ran."""
    rows: list[Row] = []
    if "network" in results:
        rows += network_rows(results["network"])
    if "launch" in results:
        rows += launch_rows(results["launch"])
    if "history" in results:
        rows += history_rows(results["history"])
    if "throughput" in results:
        rows += throughput_rows(results["throughput"])
    if "hostile" in results:
        rows += hostile_rows(results["hostile"])
    for key in sorted(k for k in results if k.endswith("_error")):
        last_line = results[key].strip().splitlines()[-1][:100]
        rows.append(Row("Errors", f"section {key[:-len('_error')]} failed", last_line, "—", "failed",
                        "traceback in the JSON file"))
    return rows


HEADERS = ("measurement", "result", "target", "met?", "details")


def _cells(row: Row) -> tuple[str, ...]:
    return row.measure, row.result, row.target, row.status, row.details


def text_table(rows: list[Row]) -> str:
    """A plain-text table grouped by section, columns aligned (details last, unpadded)."""
    cells = [_cells(r) for r in rows]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(HEADERS[:-1])]
    out = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths + [0])).rstrip(),
           "  ".join("-" * w for w in widths + [len(HEADERS[-1])])]
    section = None
    for row, cell in zip(rows, cells):
        if row.section != section:
            section = row.section
            out.append(f"[{section}]")
        out.append("  ".join(c.ljust(w) for c, w in zip(cell, widths + [0])).rstrip())
    return "\n".join(out)


def markdown_table(rows: list[Row], meta: dict, notes: list[str] = ()) -> str:
    """The markdown table for the README's Performance section, with the setup line and the notes."""
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    out = [f"Measured {meta['date']} on {meta['cpus']} CPU cores, Python {meta['python']}, "
           f"`make bench`{' --quick' if meta.get('quick') else ''} (commit {meta.get('commit', '?')}); "
           "the load generator runs on the same cores as the servers.", "",
           "| section | " + " | ".join(HEADERS) + " |", "| --- " * (len(HEADERS) + 1) + "|"]
    section = None
    for row in rows:
        shown = row.section if row.section != section else ""
        section = row.section
        out.append("| " + " | ".join(esc(c) for c in (shown, *_cells(row))) + " |")
    if notes:
        out += ["", *[line for line in notes if line.startswith("- ")]]
    return "\n".join(out) + "\n"


def rows_as_dicts(rows: list[Row]) -> list[dict]:
    """Rows for the JSON file."""
    return [asdict(r) for r in rows]
