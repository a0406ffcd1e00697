"""Issue 14: the list page is sent after the FIRST ImagingStudy page; older pages arrive in the background.

Against the live sandbox EHR (a patient with 1,000 generated studies, ``EXTRA_HISTORIES``), every upstream
request counted at the sandbox: the page is answered after exactly one ImagingStudy request (the later pages
are held at the sandbox until the page is in hand, so the count cannot race), then the background loader reads
the other four pages of 200 and the page's rows route returns exactly the older studies.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import parse_qs

import pytest

from app import create_app
from sandbox import create_app as create_sandbox
from tests.app.progressive import wait_until_settled
from tests.app.test_end_to_end import APP_ORIGIN, SandboxDriver, _ids
from tests.support import live_server, sandbox_registration

PATIENT = "pt-2001"
STUDIES = 1000


class RecordingEhr:
    """The sandbox EHR's WSGI app behind a recorder; ImagingStudy pages after the first wait for ``release``."""

    def __init__(self, port: int):
        self.sandbox = create_sandbox({"PUBLIC_BASE_URL": f"http://localhost:{port}", "APP_ORIGIN": APP_ORIGIN,
                                       "EXTRA_HISTORIES": {PATIENT: STUDIES}})
        self.release = threading.Event()
        self.requests: list[tuple[str, str, dict]] = []
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        path, query = environ["PATH_INFO"], parse_qs(environ.get("QUERY_STRING", ""))
        if path.endswith("/fhir/ImagingStudy") and "_getpagesoffset" in query:
            assert self.release.wait(20), "later pages were never released"
        with self._lock:
            self.requests.append((environ["REQUEST_METHOD"], path, query))
        return self.sandbox(environ, start_response)

    def fhir(self, resource: str) -> list[dict]:
        """The query of every FHIR request for ``resource`` (``ImagingStudy``, ``Patient/pt-2001``, …)."""
        with self._lock:
            return [q for _, p, q in self.requests if p.endswith(f"/fhir/{resource}")]

    def fhir_total(self) -> int:
        with self._lock:
            return sum(1 for _, p, _ in self.requests if "/fhir/" in p)


@pytest.fixture(scope="module")
def recorded():
    built = {}

    def build(port):
        built["ehr"] = RecordingEhr(port)
        return built["ehr"]

    with live_server(build) as port:
        yield built["ehr"], f"http://localhost:{port}"


def test_1000_studies_the_page_after_one_imagingstudy_request_the_rest_in_the_background(recorded, tmp_path):
    ehr, base = recorded
    registration = sandbox_registration(APP_ORIGIN, base, fhir={"page_size": 200, "max_pages": 20,
                                                                "connect_timeout": 2, "read_timeout": 10})
    driver = SandboxDriver(create_app(registration, secret_key="e2e", store_path=tmp_path / "s.sqlite3").test_client(),
                           base)
    launch = driver.ehr_launch(PATIENT)
    started = driver.client.get(launch["launch_url"][len(APP_ORIGIN):])
    callback = driver.client.get(driver.follow_authorize(started.headers["Location"]))
    before = ehr.fhir_total()

    response = driver.client.get(callback.headers["Location"])
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    searches = ehr.fhir("ImagingStudy")
    assert len(searches) == 1 and "_getpagesoffset" not in searches[0]  # the page came after ONE search request
    assert searches[0]["_count"] == ["200"] and searches[0]["_sort"] == ["-started"]
    assert len(ehr.fhir(f"Patient/{PATIENT}")) == 1 and len(ehr.fhir("DiagnosticReport")) == 1  # concurrent with it
    assert ehr.fhir_total() - before == 1 + 1 + 1 + 2  # and the first page's two Endpoints
    first_ids = _ids(page)
    assert len(first_ids) == 200 and first_ids[0] == "is-2001-1000" and first_ids[-1] == "is-2001-0801"
    assert '<span class="count" id="study-count">200</span>' in page
    assert "Loading older studies… 200 loaded so far." in page and 'data-loading="true"' in page
    assert "List incomplete" not in page

    ehr.release.set()
    answer = wait_until_settled(driver.client, page)
    assert (answer["loading"], answer["loaded"], answer["matching"], answer["incomplete"]) == (False, 1000, 1000, None)
    pages = ehr.fhir("ImagingStudy")
    assert [q.get("_getpagesoffset", ["0"])[0] for q in pages] == ["0", "200", "400", "600", "800"]
    # ImagingStudy pages, the Patient read, the report search, and the two Endpoints the studies name (the sandbox
    # does not include them; read once for the first page, then from the app's Endpoint cache)
    assert len(ehr.fhir("Endpoint/sandbox-iid")) == len(ehr.fhir("Endpoint/sandbox-dicomweb")) == 1
    assert ehr.fhir_total() - before == 5 + 1 + 1 + 2

    launch_path = re.search(r'data-rows-url="(/l/[^/"]+/)rows"', page).group(1)
    load = re.search(r'data-load-id="([^"]+)"', page).group(1)
    older = driver.client.get(f"{launch_path}rows", query_string={"after": 200, "limit": 200, "load": load,
                                                                 "last": first_ids[-1]}).get_json()
    assert older["same_load"] and not older["prefix_changed"]
    assert older["ids"] == [f"is-2001-{n:04d}" for n in range(800, 600, -1)]
    assert older["more"] == 600 and older["html"].count('<li class="study') == 200

    again = driver.client.get(launch_path).get_data(as_text=True)  # from the launch's cache: no EHR request
    assert ehr.fhir_total() - before == 9
    assert '<span class="count" id="study-count">1000</span>' in again and "Loading older studies" not in again
    assert "Show 200 older studies" in again and "(800 not shown)" in again
