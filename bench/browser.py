"""A launch driven like a browser, with requests: EHR launch API, then ``GET /launch`` following every redirect.

The app's session cookie is ``Secure``; browsers send Secure cookies to
``http://127.0.0.1`` and ``http://localhost`` (potentially trustworthy origins),
but Python's cookie jar only sends them over https (and requests copies the
session's jar into a default-policy jar for every request, redirects included).
So redirects are followed hop by hop with requests, and after each hop
:func:`trust_loopback` clears the Secure flag of cookies set by loopback hosts,
which is what a browser's behaviour amounts to there.

The browser already has the EHR open (the user launched from it), so its
connections to the EHR are kept alive across launches: every browser session
mounts one shared ``https://`` adapter (:data:`EHR_ADAPTER`), whose sockets
bind 127.0.0.2 so that the latency proxy can tell the browser's connections
from the app's (127.0.0.1). :func:`warm_ehr` opens that connection before timing.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

SESSION_COOKIE = "imaging_app_session"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
APP_DIV = re.compile(r'<div class="app" data-launch-id="([^"]*)" data-patient-id="([^"]*)"')
STUDY_COUNT = re.compile(r'<span class="count" id="study-count">(\d+)</span>')
STUDY_ROW = re.compile(r'data-study-id="')
MAX_HOPS = 10
BROWSER_SOURCE = "127.0.0.2"


class SourceAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections bind a given loopback source address."""

    def __init__(self, source: str, **kwargs):
        self.source = source
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):  # noqa: D102 - requests API
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


EHR_ADAPTER = SourceAdapter(BROWSER_SOURCE, pool_connections=4, pool_maxsize=16)


def trust_loopback(jar) -> None:
    """Let Secure cookies of loopback hosts travel over http, as browsers do for 127.0.0.1/localhost."""
    for cookie in jar:
        if cookie.secure and cookie.domain.lstrip(".") in LOOPBACK:
            cookie.secure = False


def browser_session() -> requests.Session:
    """A fresh requests session: a browser with an empty cookie jar (its EHR connections shared, kept alive)."""
    session = requests.Session()
    session.mount("https://", EHR_ADAPTER)
    return session


def warm_ehr(ehr_base: str) -> None:
    """Open (or check) the browser's kept-alive connection to the EHR: ``GET /fhir/.well-known/smart-configuration`` through it."""
    # not ``with``: closing a session would close the shared adapter's pool
    browser_session().get(f"{ehr_base}/fhir/.well-known/smart-configuration", timeout=30).raise_for_status()


def follow(session: requests.Session, url: str, timeout: float = 60) -> tuple[requests.Response, list]:
    """GET ``url`` and every redirect after it (303/302 become GETs), like a browser navigation.

    Returns the final response and the hops ``(path, status, seconds to headers)``.
    """
    hops = []
    for _ in range(MAX_HOPS):
        response = session.get(url, allow_redirects=False, timeout=timeout)
        hops.append((urlsplit(response.url).path, response.status_code, response.elapsed.total_seconds()))
        trust_loopback(session.cookies)
        target = session.get_redirect_target(response)
        if not target:
            return response, hops
        url = urljoin(response.url, target)
    raise RuntimeError(f"more than {MAX_HOPS} redirects")


def page_identity(html: str) -> tuple[str | None, str | None]:
    """``(launch_id, patient_id)`` from the list page's ``div.app`` data attributes, or ``(None, None)``."""
    match = APP_DIV.search(html)
    return (match.group(1), match.group(2)) if match else (None, None)


@dataclass
class LaunchResult:
    """One launch followed to the list.

    ``wall_s``: from ``GET /launch`` to the list's HTML read; ``hops``: ``(url path,
    status, seconds to headers)`` of every response on the way; ``launch_id``:
    from the final URL ``/l/<id>/``; ``cookie``: the app session cookie value.
    """

    wall_s: float
    status: int
    hops: list[tuple[str, int, float]] = field(default_factory=list)
    launch_id: str | None = None
    patient_id: str | None = None
    studies: int = 0
    cookie: str | None = None
    list_url: str | None = None
    html_bytes: int = 0


def listed_count(html: str) -> int:
    """Studies in the list: the page's count (all of them; the newest 200 rows are rendered first)."""
    match = STUDY_COUNT.search(html)
    return int(match.group(1)) if match else len(STUDY_ROW.findall(html))


def create_ehr_launch(ehr_base: str, patient: str) -> str:
    """``POST {ehr}/ehr/api/launches``; returns the app launch URL the EHR would open."""
    response = requests.post(f"{ehr_base}/ehr/api/launches", json={"patient": patient}, timeout=30)
    response.raise_for_status()
    return response.json()["launch_url"]


def launch_to_list(ehr_control: str, patient: str, session: requests.Session | None = None,
                   timeout: float = 60) -> LaunchResult:
    """Create an EHR launch for ``patient`` (at ``ehr_control``, the sandbox's own port), then time ``GET /launch``
    through every redirect to the list page.

    The EHR launch creation is not timed. Raises ``requests.RequestException`` on transport errors.
    """
    session = session or browser_session()
    launch_url = create_ehr_launch(ehr_control, patient)
    started = time.perf_counter()
    response, hops = follow(session, launch_url, timeout)  # 303 authorize, 302 callback, 303 list
    html = response.text
    wall = time.perf_counter() - started
    launch_id, patient_id = page_identity(html)
    return LaunchResult(wall_s=wall, status=response.status_code, hops=hops, launch_id=launch_id,
                        patient_id=patient_id, studies=listed_count(html),
                        cookie=session.cookies.get(SESSION_COOKIE), list_url=response.url,
                        html_bytes=len(response.content))
