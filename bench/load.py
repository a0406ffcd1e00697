"""Closed-loop load generator: N concurrent clients re-opening study lists, with http.client keep-alive.

Clients are threads spread over a few processes (``spawn``), so the generator
is not held back by one GIL; each client owns one ``http.client.HTTPConnection``
(kept alive when the server allows it, reopened when it closes) and sends
requests back to back (no think time). Every request names a launch
(``/l/<id>/`` with that launch's session cookie); every 200 page is checked to
belong to it (``data-launch-id`` and ``data-patient-id`` of ``div.app``).
Requests say ``Accept-Encoding: gzip`` as browsers do; a compressed page is decoded up to its first 64 KiB
(the identity is near the top), so the generator's CPU is not spent on rows it does not check.
Bounded by a duration and a request cap. On 2 cores the generator competes
with the server; its CPU time is returned so the report can say how much.
"""

from __future__ import annotations

import http.client
import re
import zlib
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

IDENTITY_WINDOW = 64 * 1024  # decoded bytes read of a compressed page: div.app comes before the list
IDENTITY = re.compile(rb'<div class="app" data-launch-id="([^"]*)" data-patient-id="([^"]*)"')


@dataclass(frozen=True)
class Target:
    """One authorised launch: its list path, its ``Cookie`` header value, and whose it is."""

    path: str
    cookie: str
    launch_id: str
    patient_id: str


def _client_loop(host: str, port: int, targets: list[Target], offset: int, deadline: float, cap: int,
                 out: dict) -> None:
    """One client: request targets ``offset, offset+1, ...`` (mod len), i.e. every launch in turn,
    until ``deadline`` or ``cap`` requests."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    index = offset
    latencies, errors, mismatches, statuses = out["latencies"], 0, 0, {}
    for _ in range(cap):
        if time.time() >= deadline:
            break
        target = targets[index % len(targets)]
        index += 1
        started = time.perf_counter()
        try:
            conn.request("GET", target.path, headers={"Cookie": target.cookie, "Accept-Encoding": "gzip"})
            response = conn.getresponse()
            body = response.read()
            if response.getheader("Content-Encoding") == "gzip":  # as a browser would; the identity is near the top
                body = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, IDENTITY_WINDOW)
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            statuses["exception"] = statuses.get("exception", 0) + 1
            continue
        elapsed = time.perf_counter() - started
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if response.status != 200:
            errors += 1
            continue
        latencies.append(elapsed)
        out["by_patient"].setdefault(target.patient_id, []).append(elapsed)
        match = IDENTITY.search(body)
        if match is None or match.group(1).decode() != target.launch_id \
                or match.group(2).decode() != target.patient_id:
            mismatches += 1
    conn.close()
    out["errors"] += errors
    out["mismatches"] += mismatches
    for status, count in statuses.items():
        out["statuses"][str(status)] = out["statuses"].get(str(status), 0) + count


def _process_main(args: tuple) -> dict:
    """One generator process: its share of the clients as threads; returns raw latencies and counts."""
    import threading

    host, port, targets, first_client, clients, start_at, duration, cap = args
    time.sleep(max(0.0, start_at - time.time()))
    cpu_started = time.process_time()
    deadline = start_at + duration
    outs = [{"latencies": [], "by_patient": {}, "errors": 0, "mismatches": 0, "statuses": {}}
            for _ in range(clients)]
    threads = [threading.Thread(target=_client_loop, args=(
        host, port, targets, first_client + i, deadline, cap, outs[i]), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ended = time.time()
    by_patient: dict[str, list[float]] = {}
    for o in outs:
        for patient, values in o["by_patient"].items():
            by_patient.setdefault(patient, []).extend(values)
    merged = {"latencies": [x for o in outs for x in o["latencies"]], "by_patient": by_patient,
              "errors": sum(o["errors"] for o in outs), "mismatches": sum(o["mismatches"] for o in outs),
              "statuses": {}, "ended": ended, "cpu_s": time.process_time() - cpu_started}
    for o in outs:
        for status, count in o["statuses"].items():
            merged["statuses"][status] = merged["statuses"].get(status, 0) + count
    return merged


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0..100) of an ascending list; ``None`` when empty."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def run_level(host: str, port: int, targets: list[Target], clients: int, duration_s: float,
              max_requests: int, processes: int = 2) -> dict:
    """Run ``clients`` concurrent clients for ``duration_s`` (at most ``max_requests`` in all).

    Returns requests/s, p50/p95/p99/max latency (ms), error and mismatch counts,
    status counts and the generator's CPU seconds.
    """
    processes = max(1, min(processes, clients))
    per_process = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    cap = max(1, max_requests // clients)
    start_at = time.time() + 1.0  # every process ready before the clock starts
    jobs, first = [], 0
    for count in per_process:
        jobs.append((host, port, targets, first, count, start_at, duration_s, cap))
        first += count
    with ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(_process_main, jobs))
    latencies = sorted(x for r in results for x in r["latencies"])
    elapsed = max(r["ended"] for r in results) - start_at
    by_patient: dict[str, list[float]] = {}
    for r in results:
        for patient, values in r["by_patient"].items():
            by_patient.setdefault(patient, []).extend(values)
    statuses: dict[str, int] = {}
    for r in results:
        for status, count in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count

    def ms(value):
        return None if value is None else value * 1000

    return {"clients": clients, "duration_s": elapsed, "requests": len(latencies),
            "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
            "p50_ms": ms(percentile(latencies, 50)), "p95_ms": ms(percentile(latencies, 95)),
            "p99_ms": ms(percentile(latencies, 99)), "max_ms": ms(latencies[-1] if latencies else None),
            "errors": sum(r["errors"] for r in results), "mismatches": sum(r["mismatches"] for r in results),
            "statuses": statuses, "generator_cpu_s": sum(r["cpu_s"] for r in results),
            "by_patient": {p: {"requests": len(v), "p50_ms": ms(percentile(sorted(v), 50)),
                               "p99_ms": ms(percentile(sorted(v), 99))} for p, v in sorted(by_patient.items())},
            "generator_processes": processes}
