"""Operational signals: one structured log line per request (:mod:`.requests`), Prometheus metrics (:mod:`.metrics`),
readiness, and an executor that carries the request's context into its worker threads (:mod:`.executor`)."""
