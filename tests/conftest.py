"""Root test configuration: the summary line for tests skipped because the machine lacks something."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.environment import MISSING
from tests.support import live_sandbox


@pytest.fixture(scope="module")
def sandbox_base():
    """One sandbox EHR (default settings) for a module: its base URL, ``http://localhost:<port>``."""
    with live_sandbox() as port:
        yield f"http://localhost:{port}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One loud line per missing resource, after the results, with how many tests it kept from running."""
    if not MISSING:
        return
    counts: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        message = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        for reason in MISSING:
            if reason in message:
                counts[reason] += 1
    terminalreporter.section("not run on this machine", sep="=", yellow=True, bold=True)
    for reason in sorted(MISSING):
        count = counts[reason] or MISSING[reason]
        terminalreporter.line(f"SKIPPED {count} test{'s' if count != 1 else ''}: {reason}", yellow=True, bold=True)
