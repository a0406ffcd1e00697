"""Scenario 6: security as the browser sees it: no token anywhere in reach of the page, cookie flags, CSP."""

from __future__ import annotations

import pytest
from playwright.sync_api import Response

from .pages import LIST_URL, choose_study, launch_to_list
from .servers import study_uid_of

pytestmark = pytest.mark.browser

# Web storage of a frame as text. A third-party frame may be denied storage altogether (Chromium with
# third-party cookies blocked): then nothing can be stored there, which is recorded as such.
_STORAGE = """() => ["localStorage", "sessionStorage"].map(name => {
  try { return name + " " + JSON.stringify(Object.entries(window[name])); }
  catch (error) { return name + " unavailable: " + error.name; }
}).join("\\n")"""


def _csp(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in filter(None, (p.strip() for p in header.split(";"))):
        name, *values = part.split()
        directives[name] = values
    return directives


def test_tokens_never_reach_the_browser(context, page, servers):
    urls: list[str] = []
    responses: list[Response] = []
    context.on("request", lambda request: urls.append(request.url))
    context.on("response", lambda response: responses.append(response))
    before = servers.issued_tokens()

    app = launch_to_list(page, servers, "pt-1001")
    choose_study(app, "is-1001-ct")
    with context.expect_page() as new_window:  # the viewer's own window, too
        app.locator("#viewer-open-new").click()
    new_window.value.wait_for_load_state()

    tokens = servers.issued_tokens() - before
    assert len(tokens) == 2, "the launch should have issued one access and one refresh token"

    haystacks: dict[str, str] = {}
    for index, open_page in enumerate(context.pages):
        for number, frame in enumerate(open_page.frames):
            where = f"page {index} frame {number} ({frame.url})"
            haystacks[f"{where} HTML"] = frame.content()
            haystacks[f"{where} storage"] = frame.evaluate(_STORAGE)
            haystacks[f"{where} cookie"] = frame.evaluate("() => document.cookie")
    for response in responses:
        if response.request.resource_type in ("document", "script", "stylesheet", "xhr", "fetch") \
                and not 300 <= response.status < 400:
            haystacks[f"body of {response.url}"] = response.text()
        haystacks[f"headers of {response.url}"] = repr(response.headers) + repr(response.request.headers)
    haystacks["request URLs"] = "\n".join(urls)
    haystacks["cookies"] = repr(context.cookies())

    # the net was cast: the callback's URL and the list page's body are among the haystacks
    assert any(u.startswith(f"{servers.app_origin}/callback?code=") for u in urls)
    assert any("WHITFIELD, Margaret Ann" in text for where, text in haystacks.items() if where.startswith("body of"))
    leaks = [(where, token[:6] + "…") for where, text in haystacks.items() for token in tokens if token in text]
    assert leaks == []


def test_app_cookie_is_httponly_secure_samesite_none_and_partitioned(context, page, servers):
    launch_to_list(page, servers, "pt-1001")
    app_host = servers.app_origin.split("//")[1].split(":")[0]
    cookies = [c for c in context.cookies() if c["domain"] == app_host]
    assert [c["name"] for c in cookies] == ["imaging_app_session"]
    cookie = cookies[0]
    assert cookie["httpOnly"] is True
    assert cookie["secure"] is True
    assert cookie["sameSite"] == "None"
    assert cookie.get("partitionKey") == "http://localhost"  # CHIPS: keyed by the EHR's top-level site
    # the signed session holds only the opaque browser id (no token, no patient)
    session = servers.app.session_interface.get_signing_serializer(servers.app).loads(cookie["value"])
    assert set(session) == {"_permanent", "browser_binding"}


def test_content_security_policy_of_the_app_page(context, page, servers):
    documents: list[Response] = []
    page.on("response", lambda r: documents.append(r) if r.request.is_navigation_request() else None)
    app = launch_to_list(page, servers, "pt-1001")
    viewer_url, _ = choose_study(app, "is-1001-ct")

    list_page = next(r for r in documents if r.url == app.url.split("?")[0])
    assert list_page.status == 200
    csp = _csp(list_page.headers["content-security-policy"])
    assert csp["frame-src"] == [servers.ehr_origin]  # the viewer's origin, and only it
    assert viewer_url.startswith(servers.ehr_origin + "/")
    assert csp["frame-ancestors"] == ["'self'", servers.ehr_origin]
    assert csp["script-src"] == ["'self'"]
    assert "x-frame-options" not in list_page.headers
    assert list_page.headers["referrer-policy"] == "no-referrer"
    assert list_page.headers["cache-control"] == "no-store"

    # the launch id in the app's URL never reaches the viewer: no Referer on the viewer's request
    viewer_document = next(r for r in documents if r.url == viewer_url)
    assert "referer" not in viewer_document.request.headers
    assert study_uid_of(viewer_document.url) == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    assert LIST_URL.search(app.url)
