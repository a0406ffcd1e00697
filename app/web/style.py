"""The EHR's look as a launch-bound stylesheet (SMART App Launch 2.2 §Styling).

Route ``GET /l/<launch_id>/style.css``: the launch's ``smart_style_url`` document
(fetched server-side through the guarded client, validated by :mod:`app.smart.style`) as CSS
custom properties, ``Content-Type: text/css``, ``Cache-Control: private, max-age=300``; an
empty stylesheet when the launch has no usable style. Only the browser bound to the launch
gets it (:meth:`~app.launches.context.LaunchContext.load`). ``static/app.css`` reads the
``--smart-*`` variables with its own values as fallbacks, so the CSP stays ``style-src 'self'``.

The validated style is cached per ``(launch id, style URL)`` for ``STYLE_TTL_SECONDS`` in a
bounded LRU (:class:`StyleCache`, ``MAX_CACHED_STYLES`` entries per process): one fetch per
launch and URL, not one per page. ``base.html`` links the stylesheet only on a launch's pages
whose token response carried ``smart_style_url`` (:func:`style_context`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable

from flask import Blueprint, Flask, g, request, url_for

from ..launches.context import LaunchContext
from ..smart.style import fetch_style, stylesheet
from .security import browser_binding, frame_launch
from .services import services

STYLE_TTL_SECONDS = 300
MAX_CACHED_STYLES = 512

bp = Blueprint("style", __name__)


class StyleCache:
    """A thread-safe LRU of validated styles: ``key -> (stored_at, {key: value})``, at most ``size`` entries,
    each kept ``ttl`` seconds (``clock``: ``time.monotonic``)."""

    def __init__(self, size: int = MAX_CACHED_STYLES, ttl: float = STYLE_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.size, self.ttl, self._clock = size, ttl, clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, dict[str, str]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str], load: Callable[[], dict[str, str]]) -> dict[str, str]:
        """The cached style for ``key``, else ``load()`` (called outside the lock) stored and returned."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] < self.ttl:
                self._entries.move_to_end(key)
                return entry[1]
        style = load()
        with self._lock:
            self._entries[key] = (now, style)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return style

    def __len__(self) -> int:
        return len(self._entries)


CACHE = StyleCache()


@bp.get("/l/<launch_id>/style.css")
def launch_style(launch_id: str):
    """The launch's EHR style as ``:root { --smart-…: …; }`` (``text/css``; empty without a usable style)."""
    svc = services()
    context = LaunchContext.load(svc.store, svc.settings, svc.outbound, launch_id, browser_binding())
    frame_launch(context.ehr)
    url = context.state.grant.smart_style_url
    style = CACHE.get((context.id, url), lambda: fetch_style(url, context.ehr, context.state.iss, svc.outbound)) \
        if url else {}
    g.cache_control = f"private, max-age={STYLE_TTL_SECONDS}"
    return stylesheet(style), 200, {"Content-Type": "text/css; charset=utf-8"}


def style_context() -> dict:
    """Template context: ``launch_style_href``, the launch's stylesheet URL when the page belongs to a launch
    whose token response named a style (``g.launch_style_url``, set by ``show_in_header``), else ``None``."""
    launch_id = (request.view_args or {}).get("launch_id") if request else None
    if not (launch_id and g.get("launch_style_url")):
        return {"launch_style_href": None}
    return {"launch_style_href": url_for("style.launch_style", launch_id=launch_id)}


def register_style(app: Flask) -> None:
    """Register the stylesheet route and its template context on ``app``."""
    app.register_blueprint(bp)
    app.context_processor(style_context)
