"""``GET /readyz`` (readiness) and ``GET /metrics`` (Prometheus), registered by the app factory.

``/readyz``: 200 ``{"status": "ready"}`` when the configuration is loaded (the
app was built) and ``ready_check()`` passes (the launch store answers), else 503
``{"status": "not-ready", "failing": "store"}``. ``/healthz`` (liveness) is
answered before Flask (``app/__init__.py``).

``/metrics``: 404 when metrics are off (the default); 403 for a client address
outside the allowlist (behind a reverse proxy this is the proxy's address:
scrape the app directly, or keep the proxy from forwarding ``/metrics``).
"""

from __future__ import annotations

import logging
from typing import Callable

from flask import Blueprint, Flask, abort, request

from . import metrics

log = logging.getLogger(__name__)


def register_endpoints(app: Flask, *, ready_check: Callable[[], None], metrics_enabled: bool,
                       allowlist: metrics.AddressAllowlist) -> None:
    """Add ``/readyz`` and ``/metrics`` to ``app``; ``ready_check`` raises when the store cannot be used."""
    bp = Blueprint("ops", __name__)

    @bp.get("/readyz")
    def readyz():
        try:
            ready_check()
        except Exception as exc:
            log.warning("not ready: launch store %s", type(exc).__name__)
            return {"status": "not-ready", "failing": "store"}, 503, {"Cache-Control": "no-store"}
        return {"status": "ready"}, 200, {"Cache-Control": "no-store"}

    @bp.get("/metrics")
    def prometheus():
        if not metrics_enabled:
            abort(404)
        if not allowlist.allows(request.remote_addr):
            abort(403)
        body, content_type = metrics.exposition()
        return body, 200, {"Content-Type": content_type, "Cache-Control": "no-store"}

    app.register_blueprint(bp)
