"""Single source of wall-clock time for the sandbox.

Every expiry check (launch ids, authorization codes, tokens) calls :func:`now`,
so tests can move time forward with ``monkeypatch.setattr(sandbox.clock, "now", ...)``.
"""

import time


def now() -> float:
    """Return the current POSIX time in seconds (float)."""
    return time.time()
