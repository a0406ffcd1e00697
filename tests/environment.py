"""What the tests need from the machine (``../shared``, Chromium, Orthanc, Redis): skip or fail, and say so.

A plain clone with nothing beside it passes ``make test``: a test whose
resource is missing is skipped with a one-line reason, and the end of the run
repeats every such reason once (``pytest_terminal_summary`` in ``tests/conftest.py``).
Under ``CI=true`` nothing is skipped for a missing resource: the test fails.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

#: reason -> how many tests were skipped for it (printed at the end of the run)
MISSING: Counter[str] = Counter()  # reason -> times required and missing


def on_ci() -> bool:
    """True on CI (``CI=true``), where every test must run."""
    return os.environ.get("CI", "").lower() == "true"


def require(available: bool, reason: str) -> None:
    """Skip the calling test when ``available`` is false (fail on CI); ``reason`` says what is missing and how to get it."""
    if available:
        return
    if on_ci():
        pytest.fail(f"{reason}; CI must run this test", pytrace=False)
    MISSING[reason] += 1
    pytest.skip(reason)
