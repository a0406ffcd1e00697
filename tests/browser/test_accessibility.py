"""Accessibility: axe-core finds no serious or critical violations on the list, the viewer and an error page;
skip link and visible focus.

axe-core comes from npm (``tests/browser/axe/package.json``, pinned in its lock file). When it is not installed
the fixture runs ``npm ci`` there; without npm or the registry the tests are skipped with the reason (failed on CI).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.environment import require

from .pages import ERROR_TITLE, app_frame, choose_study, launch_to_list, viewer_frame
from .test_faults import _relaunch_with

pytestmark = pytest.mark.browser

AXE_DIR = Path(__file__).resolve().parent / "axe"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def axe_script() -> str:
    """The path of ``axe.min.js``, installing it with ``npm ci`` when missing."""
    if not AXE_JS.exists() and shutil.which("npm"):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=AXE_DIR, check=False, timeout=180,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    require(AXE_JS.exists(), f"axe-core not installed ({AXE_JS}; run `npm ci` in {AXE_DIR})")
    return str(AXE_JS)


@pytest.fixture
def a11y_page(browser):
    """A page whose context lets Playwright inject axe-core despite the app's strict CSP (``bypass_csp``)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def serious_violations(frame, axe_script: str) -> list[str]:
    """``id: target`` of each serious or critical axe-core violation in *frame* (WCAG 2.1 A/AA rules)."""
    frame.add_script_tag(path=axe_script)
    result = frame.evaluate("""async () => {
      const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
      return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
        .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '));
    }""")
    return result


def test_study_list_and_viewer_have_no_serious_violations(a11y_page, servers, axe_script):
    app = launch_to_list(a11y_page, servers, "pt-1001")
    choose_study(app, "is-1001-nm-bone")
    expect(app.locator('[data-report-for="is-1001-nm-bone"]')).to_be_visible()
    assert serious_violations(app, axe_script) == []
    assert serious_violations(viewer_frame(app), axe_script) == []


def test_error_page_has_no_serious_violations(a11y_page, servers, axe_script):
    _relaunch_with(a11y_page, servers, "pt-1001", "deny")
    app = app_frame(a11y_page)
    expect(app.locator(ERROR_TITLE)).to_have_text("Access was denied in the EHR")
    assert serious_violations(app, axe_script) == []


def test_skip_link_and_visible_focus(page, servers):
    app = launch_to_list(page, servers, "pt-1001")
    app.focus("body")
    app.locator(".skip-link").focus()
    expect(app.locator(".skip-link")).to_be_visible()
    page.keyboard.press("Tab")  # the next stop after the skip link's target region
    app.locator("#study-list a.study-link[tabindex='0']").focus()
    outline = app.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    assert app.eval_on_selector_all("#study-list [tabindex='0']", "els => els.length") == 1


def test_expired_session_page_names_ehr_and_patient_and_passes_axe(a11y_page, servers, axe_script):
    """The 401 page of an EHR launch names the EHR and the patient, has no Relaunch button (the launch id is used
    up) and says to relaunch from the EHR; axe finds nothing serious."""
    from .servers import EHR_NAME
    _relaunch_with(a11y_page, servers, "pt-1001", "expired_token", "refresh_fails")
    app = app_frame(a11y_page)
    expect(app.locator(ERROR_TITLE)).to_have_text("Your session has expired")
    expect(app.locator("#error-ehr")).to_have_text(EHR_NAME)
    expect(app.locator("#error-patient")).to_have_text("patient pt-1001")
    expect(app.locator("#relaunch")).to_have_count(0)
    expect(app.locator("main.message p.message-action")).to_contain_text(f"start the app there")
    assert serious_violations(app, axe_script) == []


def test_ehr_style_is_applied_and_cine_viewer_passes_axe(a11y_page, servers, axe_script):
    """The sandbox's smart_style_url reaches the page as CSS variables (its highlight colour on the buttons);
    the echo's cine plays from its button without taking focus from the app's list."""
    app = launch_to_list(a11y_page, servers, "pt-1001")
    expect(app.locator("link#ehr-style")).to_have_count(1)
    app.wait_for_function("() => getComputedStyle(document.documentElement)"
                          ".getPropertyValue('--smart-color-highlight').trim() === '#1f6feb'")
    assert app.evaluate("() => getComputedStyle(document.body).fontSize") == "15px"
    choose_study(app, "is-1001-us-cine")
    viewer = viewer_frame(app)
    assert app.evaluate("() => document.activeElement.closest('#study-list') !== null")
    counter = viewer.locator("figure.series .counter").first
    expect(counter).to_have_text("1 / 30")
    play = viewer.get_by_role("button", name="Play cine")
    play.click()
    expect(viewer.get_by_role("button", name="Pause cine")).to_have_attribute("aria-pressed", "true")
    viewer.wait_for_function("() => !document.querySelector('figure.series .counter').textContent.startsWith('1 /')")
    viewer.get_by_role("button", name="Pause cine").press("Enter")
    expect(viewer.locator("button.play")).to_have_attribute("aria-pressed", "false")
    assert serious_violations(viewer, axe_script) == []
    assert serious_violations(app, axe_script) == []
