"""Fixtures for the real-browser tests: both servers (session), Chromium (session), a fresh context per test.

The EHR is reached at ``http://localhost:<port>`` and the app at
``http://127.0.0.1:<port>``: two sites, so the app runs as a cross-site
iframe in the EHR's chart and relies on its ``SameSite=None; Partitioned``
cookie. On failure a test's screenshot and HTML (page and every frame) are
written to ``test-artifacts/<test name>/``.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.environment import require
from tests.support import REPO

from .servers import CHROMIUM, chromium_available, launch_chromium, save_artifacts, start_servers

ARTIFACTS = REPO / "test-artifacts"
TIMEOUT_MS = 10_000


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item (``rep_setup``, ``rep_call``) so fixtures can see a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium for the session; skipped when absent, except on CI (``CI=true``): fail."""
    require(chromium_available(), f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium)")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def servers(browser, tmp_path_factory):
    """The sandbox EHR and the app, live on loopback for the whole session (see ``servers.py``)."""
    with start_servers(tmp_path_factory.mktemp("app-launch-store")) as running:
        yield running


@pytest.fixture
def context(browser, request):
    """A fresh browser context (cookies, storage) per test; on failure its pages are saved as artifacts."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        directory = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        for index, open_page in enumerate(ctx.pages):
            save_artifacts(open_page, directory if index == 0 else directory / f"page-{index}")
    ctx.close()


@pytest.fixture
def page(context):
    """A new page (tab) in this test's context."""
    return context.new_page()
