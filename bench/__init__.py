"""Benchmarks for the imaging SMART app against the sandbox EHR (``make bench`` runs ``bench/run.py``).

Modules: :mod:`bench.run` (CLI: runs the sections, prints the table, writes
``bench/results/<timestamp>.json``, ``.png`` and ``latest.md``/``latest.png``),
:mod:`bench.scenarios` (what is measured, the floor), :mod:`bench.report`
(targets, table, markdown), :mod:`bench.chart` (launch time against history
size), :mod:`bench.env` (sandbox, proxy and app processes, registrations),
:mod:`bench.tls` (the run's throwaway CA and server certificate),
:mod:`bench.proxy` (latency-injecting TCP proxy with connection counts),
:mod:`bench.sandbox_server` (the sandbox with a request-counting middleware,
for gunicorn or werkzeug), :mod:`bench.app_server` (the app, or the baseline,
with outbound-wait and per-request timing, for gunicorn),
:mod:`bench.baseline_app` (the fhirclient way), :mod:`bench.browser` (a
launch followed hop by hop with requests), :mod:`bench.load` (closed-loop
load generator), :mod:`bench.procs` (ports, process lifecycle, /proc memory,
CPU and socket owners). Benchmarks print figures; they never fail on timing.
"""
