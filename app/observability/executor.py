"""A ``ThreadPoolExecutor`` whose tasks run in a copy of the submitter's ``contextvars`` context.

The concurrent FHIR reads of one request then count in that request's upstream
statistics and forward its ``X-Request-ID`` (:mod:`app.outbound.observe`).
"""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """``submit(fn, ...)`` runs ``fn`` inside ``contextvars.copy_context()`` of the caller."""

    def submit(self, fn, /, *args, **kwargs):
        context = contextvars.copy_context()
        return super().submit(context.run, fn, *args, **kwargs)
