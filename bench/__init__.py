"""Benchmarks for the imaging SMART app against the sandbox EHR (``make bench`` runs ``bench/run.py``).

Modules: :mod:`bench.run` (CLI: runs the sections, prints the table, writes
``bench/results/<timestamp>.json`` and ``bench/results/latest.md``),
:mod:`bench.scenarios` (what is measured), :mod:`bench.report` (targets, table,
markdown), :mod:`bench.env` (sandbox and app processes, registrations),
:mod:`bench.sandbox_server` (the sandbox with a request-counting middleware),
:mod:`bench.app_server` (the app with outbound-wait and per-request timing, for
gunicorn), :mod:`bench.browser` (a launch followed hop by hop with requests),
:mod:`bench.load` (closed-loop load generator), :mod:`bench.procs` (ports,
process lifecycle, /proc memory and CPU). Benchmarks print figures; they never
fail on timing.
"""
