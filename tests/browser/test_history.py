"""The viewer always shows the highlighted studies: a seeded random walk over clicks, comparisons, priors,
Back, Forward, reload, filtering and the keyboard, checking after every step that the URL, the highlighted rows
and the Study UIDs the viewer received agree (issue "The study in context", item 1).

The viewer is the sandbox's IID display (cross-origin to the app); its page says ``Study UID …`` per study, read
here from the iframe's DOM. ``HISTORY_WALK_STEPS`` / ``HISTORY_WALK_SEED`` change the walk.
"""

from __future__ import annotations

import os
import random
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError, expect

from .pages import STUDY_ROWS, choose_study, launch_to_list

pytestmark = pytest.mark.browser

STEPS = int(os.environ.get("HISTORY_WALK_STEPS", "200"))
SEED = int(os.environ.get("HISTORY_WALK_SEED", "20240607"))
SETTLE_SECONDS = 10.0


def _highlighted(app) -> list[str]:
    return sorted(app.eval_on_selector_all(f"{STUDY_ROWS}.selected", "rows => rows.map(r => r.dataset.studyUid)"))


def _url_ids(app) -> list[str]:
    return sorted(parse_qs(urlsplit(app.url).query).get("study", []))


def _highlighted_ids(app) -> list[str]:
    return sorted(app.eval_on_selector_all(f"{STUDY_ROWS}.selected", "rows => rows.map(r => r.dataset.studyId)"))


def _viewer_uids(app) -> list[str] | None:
    """The Study UIDs the viewer iframe shows (``[]``: no viewer), ``None`` while it is not readable yet."""
    element = app.query_selector("#viewer-frame")
    if element is None or not element.get_attribute("src"):
        return []
    frame = element.content_frame()
    if frame is None:
        return None
    try:
        if frame.url in ("", "about:blank"):
            return None
        texts = frame.eval_on_selector_all(".study-head .uid", "els => els.map(e => e.textContent.trim())")
    except PlaywrightError:
        return None  # navigating or detached: read again
    if not texts:
        return None
    return sorted(t.removeprefix("Study UID ").strip() for t in texts)


def _state(app) -> tuple:
    try:
        app.wait_for_load_state("load")
        return _url_ids(app), _highlighted_ids(app), _highlighted(app), _viewer_uids(app)
    except PlaywrightError:
        return None, None, None, None


def settle_and_check(app, step: int, log: list[str]) -> None:
    """Wait until the pane has settled; then URL ids == highlighted ids and viewer UIDs == highlighted UIDs."""
    deadline = time.monotonic() + SETTLE_SECONDS
    last = None
    while time.monotonic() < deadline:
        url_ids, ids, uids, viewer = last = _state(app)
        if ids is not None and viewer is not None and url_ids == ids and viewer == uids:
            # stable twice in a row (a late load would show here)
            time.sleep(0.05)
            if _state(app) == last:
                return
        time.sleep(0.05)
    pytest.fail(f"step {step}: URL ids {last[0]}, highlighted {last[1]} / UIDs {last[2]}, viewer shows {last[3]}"
                f"\nlast steps: {log[-8:]}")


#: the count shown equals the rows left visible: the live filter's answer has been applied
FILTER_APPLIED = ("() => String([...document.querySelectorAll('#study-list li.study')].filter(r => !r.hidden).length)"
                  " === document.getElementById('study-count').textContent")


def _stable(app, call):
    """``call()`` once the frame is not navigating: a step's own navigation may still be replacing the document."""
    for attempt in range(3):
        try:
            return call()
        except PlaywrightError as exc:
            if "Execution context was destroyed" not in str(exc) or attempt == 2:
                raise
            app.wait_for_load_state()


def _visible_viewable(app) -> list[str]:
    return _stable(app, lambda: app.eval_on_selector_all(
        f"{STUDY_ROWS}:not([hidden])", "rows => rows.filter(r => r.querySelector('a.study-link[data-viewer-url]'))"
        ".map(r => r.dataset.studyId)"))


def _click(app, study_id: str) -> None:
    app.click(f'{STUDY_ROWS}[data-study-id="{study_id}"] a.study-link')


def _compare(app, rng: random.Random, log: list[str]) -> None:
    ids = _visible_viewable(app)
    if len(ids) < 2:
        return
    chosen = rng.sample(ids, rng.randint(2, min(3, len(ids))))
    app.evaluate("() => document.querySelectorAll('input.compare').forEach(b => { b.checked = false; })")
    for study_id in chosen:
        app.check(f'{STUDY_ROWS}[data-study-id="{study_id}"] input.compare')
    log.append(f"compare {chosen}")
    with app.expect_navigation():
        app.click("#compare-button")


def _keyboard(page, app, rng: random.Random, log: list[str]) -> None:
    app.focus("#study-list a.study-link[tabindex='0']")
    moves = [rng.choice(["ArrowDown", "ArrowUp", "Home", "End"]) for _ in range(rng.randint(1, 4))]
    finish = rng.choice(["Enter", "p", "Space"])
    log.append(f"keys {moves} {finish}")
    for key in moves:
        page.keyboard.press(key)
    focused = app.evaluate("() => document.activeElement.closest('li.study') !== null")
    assert focused, "focus left the list while moving with the arrow keys"
    page.keyboard.press(finish)


def test_random_walk_keeps_viewer_on_the_highlighted_studies(page, servers):
    rng = random.Random(SEED)
    app = launch_to_list(page, servers, "pt-1001")
    choose_study(app, "is-1001-ct")
    log: list[str] = ["click is-1001-ct"]
    settle_and_check(app, 0, log)
    actions = ["click"] * 5 + ["fast"] * 2 + ["compare"] * 2 + ["prior"] * 2 + ["back"] * 4 + ["forward"] * 2 + \
        ["reload"] + ["filter"] * 2 + ["keyboard"] * 3
    counts: dict[str, int] = {}
    for step in range(1, STEPS + 1):
        action = rng.choice(actions)
        counts[action] = counts.get(action, 0) + 1
        if action == "click":
            ids = _visible_viewable(app)
            if ids:
                study_id = rng.choice(ids)
                log.append(f"click {study_id}")
                _click(app, study_id)
        elif action == "fast":
            ids = _visible_viewable(app)
            picks = [rng.choice(ids) for _ in range(3)] if ids else []
            log.append(f"fast {picks}")
            for study_id in picks:
                _click(app, study_id)
        elif action == "compare":
            _compare(app, rng, log)
        elif action == "prior":
            log.append("prior (button)")
            app.locator("#compare-prior").dispatch_event("click")  # aria-disabled without a prior: says so
        elif action == "back":  # never back past the list's first entry (that would leave the EHR's chart)
            if _stable(app, lambda: app.evaluate("() => navigation.canGoBack")):
                log.append("back")
                app.evaluate("() => history.back()")
        elif action == "forward":
            if _stable(app, lambda: app.evaluate("() => navigation.canGoForward")):
                log.append("forward")
                app.evaluate("() => history.forward()")
        elif action == "reload":
            log.append("reload")
            with app.expect_navigation():
                app.evaluate("() => location.reload()")
        elif action == "filter":
            text = rng.choice(["", "", "MR", "US", "2004", "Aug 2004", "abdomen", "CT"])
            log.append(f"filter {text!r}")
            if _stable(app, lambda: app.input_value("#filter-text")) != text:  # wait for the server's answer, then for it to be applied
                with page.expect_response(lambda response: "/matches?" in response.url):
                    app.fill("#filter-text", text)
            app.wait_for_function(FILTER_APPLIED)
            expected = app.evaluate("() => document.querySelectorAll('#study-list li.study').length")
            if text == "":  # the list is whole again once the server's answer arrived
                expect(app.locator(f"{STUDY_ROWS}:not([hidden])")).to_have_count(expected)
        elif action == "keyboard":
            _keyboard(page, app, rng, log)
        settle_and_check(app, step, log)
    # every kind of step ran (the walk is not degenerate)
    assert set(counts) == set(actions), counts
    assert counts["back"] >= STEPS // 10 and counts["compare"] >= STEPS // 25, counts


def test_back_after_two_clicks_shows_the_first_study(page, servers):
    """The reported case: CT, then MR, then Back: CT highlighted and in the viewer (not MR's title over CT)."""
    app = launch_to_list(page, servers, "pt-1001")
    ct = servers.study("pt-1001", "is-1001-ct").study_instance_uid
    choose_study(app, "is-1001-ct")
    choose_study(app, "is-1001-mr")
    app.evaluate("() => history.back()")
    expect(app.locator(f"{STUDY_ROWS}.selected")).to_have_attribute("data-study-id", "is-1001-ct")
    settle_and_check(app, 1, ["back"])
    assert _viewer_uids(app) == [ct]
    assert app.locator("#viewer-title").text_content().startswith("CT Chest")
    app.evaluate("() => history.forward()")
    expect(app.locator(f"{STUDY_ROWS}.selected")).to_have_attribute("data-study-id", "is-1001-mr")
    settle_and_check(app, 2, ["forward"])


def test_compare_selected_with_nothing_ticked_says_so(page, servers):
    app = launch_to_list(page, servers, "pt-1001")
    url = app.url
    app.click("#compare-button")
    expect(app.locator("#compare-hint")).to_have_text("Tick the studies to compare first (up to 4)")
    assert app.url == url


def test_opening_a_study_keeps_focus_in_the_list(page, servers):
    app = launch_to_list(page, servers, "pt-1001")
    app.focus("#study-list a.study-link[tabindex='0']")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    settle_and_check(app, 1, ["enter"])
    app.wait_for_timeout(300)  # the viewer's own script has run (it used to grab focus)
    assert app.evaluate("() => document.hasFocus() && document.activeElement.matches('#study-list a.study-link')")
    assert app.eval_on_selector_all("#study-list a.study-link[tabindex='0']", "a => a.length") == 1
