"""One structured log line per request, and the request id carried upstream.

Each request gets an id: the incoming ``X-Request-ID`` when it is 1–64 of
``A-Za-z0-9._-`` (a proxy's), else a random 32-hex id. It is answered in the
``X-Request-ID`` response header and sent on every outbound request made for
it (:data:`app.outbound.observe.REQUEST_ID`).

The line (logger ``imaging.requests``, INFO), JSON::

    {"event": "request", "request_id": "…", "method": "GET", "route": "/l/<launch_id>/", "status": 200,
     "duration_ms": 12.3, "launch": "3f9a…(12 hex)", "upstream_calls": 2, "upstream_ms": 9.8}

or text ``request_id=… method=GET route=/l/<launch_id>/ status=200 duration_ms=12.3 launch=… upstream_calls=2
upstream_ms=9.8``. ``route`` is the URL rule (never the path with its ids, nor the query string);
``launch`` is the first 12 hex digits of SHA-256 of the launch id (``-`` when none): the id itself
opens a launch and is never logged. No patient, token, code or user data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import sys
import time
from typing import IO, Callable

from flask import Flask, g, request

from ..outbound.observe import REQUEST_ID, UPSTREAM_STATS, UpstreamStats

LOGGER_NAME = "imaging.requests"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")


def launch_hash(launch_id: str | None) -> str:
    """First 12 hex digits of SHA-256 of ``launch_id`` (``-`` for ``None``)."""
    return hashlib.sha256(launch_id.encode("utf-8")).hexdigest()[:12] if launch_id else "-"


def _format(record: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(record, separators=(",", ":"))
    return " ".join(f"{k}={v}" for k, v in record.items() if k != "event")


def install_request_logging(app: Flask, fmt: str = "json", stream: IO[str] | None = None,
                            on_request: Callable[[str, int], None] | None = None) -> logging.Logger:
    """Add the request id, upstream statistics and the log line to ``app``; returns the logger.

    ``fmt``: ``json`` or ``text``; ``stream``: where lines go (default stderr);
    ``on_request(route, status)``: called per request (metrics).
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not any(getattr(h, "_imaging_requests", False) for h in logger.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._imaging_requests = True
        logger.addHandler(handler)

    @app.before_request
    def _start():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else secrets.token_hex(16)
        g.request_started = time.monotonic()
        g.upstream_stats = UpstreamStats()
        g.request_tokens = (REQUEST_ID.set(g.request_id), UPSTREAM_STATS.set(g.upstream_stats))

    @app.after_request
    def _log(response):
        if "request_id" not in g:  # refused before routing (e.g. untrusted Host): no before_request ran
            return response
        response.headers["X-Request-ID"] = g.request_id
        route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        stats: UpstreamStats = g.upstream_stats
        record = {"event": "request", "request_id": g.request_id, "method": request.method, "route": route,
                  "status": response.status_code,
                  "duration_ms": round((time.monotonic() - g.request_started) * 1000, 1),
                  "launch": launch_hash((request.view_args or {}).get("launch_id")),
                  "upstream_calls": stats.calls, "upstream_ms": round(stats.seconds * 1000, 1)}
        logger.info(_format(record, fmt))
        if on_request is not None:
            on_request(route, response.status_code)
        return response

    @app.teardown_request
    def _reset(_exc):
        tokens = g.pop("request_tokens", None)
        if tokens:
            try:
                REQUEST_ID.reset(tokens[0])
                UPSTREAM_STATS.reset(tokens[1])
            except ValueError:  # pragma: no cover - torn down in another context
                pass

    return logger
