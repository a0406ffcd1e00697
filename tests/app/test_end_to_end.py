"""The app against the real sandbox EHR over HTTP: EHR launch, standalone launch, refresh, faults.

The sandbox runs as a live server on a free loopback port (``localhost``);
the app is driven in-process with Flask's test client; the browser's hops to
the EHR's authorize endpoint are made with ``requests``.
"""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from urllib.parse import urljoin

import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file

from app import create_app
from sandbox import create_app as create_sandbox
from tests.app.progressive import is_loading, wait_until_settled
from tests.support import live_server, query_of, sandbox_registration

APP_ORIGIN = "http://127.0.0.1:8000"  # the app is driven in-process; only its registered URLs use this


class SandboxDriver:
    """The app's test client and a live sandbox EHR: what an EHR user's browser would do, step by step."""

    def __init__(self, client, ehr_base: str):
        self.client = client
        self.ehr_base = ehr_base
        self.iss = f"{ehr_base}/fhir"

    def ehr_launch(self, patient: str, **options) -> dict:
        """Ask the sandbox EHR for a launch of ``patient`` (``launch``, ``iss``, ``launch_url``)."""
        response = requests.post(f"{self.ehr_base}/ehr/api/launches", json={"patient": patient, **options}, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()

    def follow_authorize(self, authorize_url: str, form: dict | None = None) -> str:
        """What the browser does at the EHR; returns the redirect back to the app (``/callback?...``)."""
        response = requests.get(authorize_url, allow_redirects=False, timeout=10)
        if form is not None:  # standalone: the patient picker
            assert response.status_code == 200, response.text
            action, fields = _picker_form(response.text, authorize_url)
            response = requests.post(action, data={**fields, **form}, allow_redirects=False, timeout=10)
        assert response.status_code in (302, 303), response.text[:500]
        location = response.headers["Location"]
        assert location.startswith(f"{APP_ORIGIN}/callback?"), location
        return location[len(APP_ORIGIN):]

    def launch_to_list(self, patient: str, **options):
        """EHR launch of ``patient`` through to the list page (or the failing callback's page)."""
        launch = self.ehr_launch(patient, **options)
        assert launch["iss"] == self.iss
        started = self.client.get(launch["launch_url"][len(APP_ORIGIN):])
        assert started.status_code == 303
        callback = self.client.get(self.follow_authorize(started.headers["Location"]))
        if callback.status_code != 303:
            return callback
        response = self.client.get(callback.headers["Location"])
        if response.status_code == 200 and is_loading(page := response.get_data(as_text=True)):
            wait_until_settled(self.client, page)  # sent after the first page; the rest loads in the background
            response = self.client.get(callback.headers["Location"])
        return response


def _picker_form(html: str, base_url: str) -> tuple[str, dict]:
    """The picker's form action and its hidden fields (a tiny parse, enough for the sandbox's own page)."""
    found: dict = {"action": None, "fields": {}}

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "form" and found["action"] is None:
                found["action"] = attrs.get("action") or base_url
            if tag == "input" and attrs.get("type") == "hidden" and attrs.get("name"):
                found["fields"][attrs["name"]] = attrs.get("value", "")

    Parser().feed(html)
    return urljoin(base_url, found["action"]), found["fields"]


def _ids(page: str) -> list[str]:
    return re.findall(r'data-study-id="([^"]+)"', page)


def _uids(page: str) -> list[str]:
    return re.findall(r"studyUID=([0-9.]+)&amp;viewerType", page)


def _launch_id(page: str) -> str:
    return re.search(r'data-launch-id="([^"]+)"', page).group(1)


@pytest.fixture(scope="module")
def sandbox_base():
    """One sandbox EHR for the module (default settings)."""
    with live_server(lambda port: create_sandbox({"PUBLIC_BASE_URL": f"http://localhost:{port}",
                                                  "APP_ORIGIN": APP_ORIGIN})) as port:
        yield f"http://localhost:{port}"


def _driver(ehr_base: str, tmp_path, **ehr_extra) -> SandboxDriver:
    registration = sandbox_registration(APP_ORIGIN, ehr_base, fhir={
        "page_size": 100, "max_pages": 20, "connect_timeout": 2, "read_timeout": 10}, **ehr_extra)
    app = create_app(registration, secret_key="e2e", store_path=tmp_path / "launches.sqlite3")
    return SandboxDriver(app.test_client(), ehr_base)


@pytest.fixture
def ehr(sandbox_base, tmp_path) -> SandboxDriver:
    """The app registered as the sandbox's public client."""
    return _driver(sandbox_base, tmp_path)


# -- EHR launch ---------------------------------------------------------------------------------
def test_ehr_launch_lists_the_patients_studies_newest_first(ehr):
    response = ehr.launch_to_list("pt-1001")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    ct_uid = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True).StudyInstanceUID
    assert ct_uid in _uids(page)
    dates = re.findall(r'<time class="date" datetime="([^"]*)"', page)
    assert len(dates) == 10 and dates == sorted(dates, reverse=True)
    assert 'class="banner"' in page


def test_all_imaging_link_is_a_patient_request_the_display_accepts(ehr):
    page = ehr.launch_to_list("pt-1001").get_data(as_text=True)
    url = re.search(r'id="all-imaging" class="study-link-all" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert "requestType=PATIENT&patientID=M0041001%5E%5E%5E%26" in url
    display = requests.get(url, timeout=10)
    assert display.status_code == 200
    assert display.text.count(".png") >= 8


def test_authorize_redirect_carries_aud_launch_and_pkce(ehr):
    launch = ehr.ehr_launch("pt-1002")
    started = ehr.client.get(launch["launch_url"][len(APP_ORIGIN):])
    params = query_of(started.headers["Location"])
    assert params["aud"] == ehr.iss
    assert params["launch"] == launch["launch"]
    assert params["code_challenge_method"] == "S256"
    assert params["scope"] == ("launch patient/ImagingStudy.rs patient/Patient.rs patient/DiagnosticReport.rs openid "
                               "fhirUser online_access")


def test_patient_with_exactly_one_study(ehr):
    assert _ids(ehr.launch_to_list("pt-1002").get_data(as_text=True)) == ["is-1002-ct"]


def test_patient_without_studies_says_so(ehr):
    response = ehr.launch_to_list("pt-1004")
    assert response.status_code == 200
    assert "No imaging studies found for this patient." in response.get_data(as_text=True)


def test_250_studies_are_all_fetched_shown_200_then_the_rest(ehr):
    page = ehr.launch_to_list("pt-1003").get_data(as_text=True)
    ids = _ids(page)
    assert len(ids) == 200
    assert '<span class="count" id="study-count">250</span>' in page
    assert "Show 50 older studies" in page
    assert "List incomplete" not in page
    more = re.search(r'<a id="show-older" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    page = ehr.client.get(more).get_data(as_text=True)
    all_ids = _ids(page)
    assert len(all_ids) == len(set(all_ids)) == 250
    assert all_ids[:200] == ids
    assert 'id="show-older"' not in page
    oldest = all_ids[-1]
    accession = re.search(rf'data-study-id="{oldest}".*?Acc ([A-Za-z0-9]+)<', page, re.S).group(1)
    filtered = ehr.client.get(f"/l/{_launch_id(page)}/", query_string={"q": accession}).get_data(as_text=True)
    assert _ids(filtered) == [oldest]  # the server-side filter searches all 250
    live = ehr.client.get(f"/l/{_launch_id(page)}/matches", query_string={"q": accession.lower()}).get_json()
    assert live == {"ids": [oldest], "count": 1, "loading": False, "loaded": 250}  # the live filter is the same filter


def test_mixed_patient_marks_flags_and_disables_viewer_without_uid(ehr):
    page = ehr.launch_to_list("pt-1005").get_data(as_text=True)
    assert "Cancelled" in page
    assert "Entered in error" in page
    assert "Viewer unavailable: No Study Instance UID recorded for this study" in page


def test_official_examples_patient(ehr):
    page = ehr.launch_to_list("pt-1006").get_data(as_text=True)
    assert set(_ids(page)) == {"example", "example-xr"}
    assert "2.16.124.113543.6003.1154777499.30246.19789.3503430046" in _uids(page)


def test_preselected_study_opens_in_viewer_and_viewer_shows_pixels(ehr):
    first_id = _ids(ehr.launch_to_list("pt-1001").get_data(as_text=True))[0]
    page = ehr.launch_to_list("pt-1001", study=first_id).get_data(as_text=True)
    match = re.search(r'<iframe id="viewer-frame"[^>]*src="([^"]+)"', page)
    assert match is not None
    viewer_url = match.group(1).replace("&amp;", "&")
    assert viewer_url.startswith(f"{ehr.ehr_base}/IHEInvokeImageDisplay?requestType=STUDY&studyUID=")
    display = requests.get(viewer_url, timeout=10)
    assert display.status_code == 200
    image_path = re.search(r'src="(/IHEInvokeImageDisplay/[^"]+\.png[^"]*)"', display.text)
    assert image_path is not None, display.text[:1000]
    png = requests.get(ehr.ehr_base + image_path.group(1).replace("&amp;", "&"), timeout=10)
    assert png.headers["Content-Type"] == "image/png"
    assert len(png.content) > 500


# -- faults -------------------------------------------------------------------------------------
@pytest.mark.parametrize("faults, status, text", [
    ({"deny": True}, 403, "Access was denied in the EHR"),
    ({"narrow_scope": True}, 403, "The EHR did not grant access to imaging studies"),
    ({"no_patient": True}, 400, "This launch carried no patient"),
    ({"expired_token": True, "refresh_fails": True}, 401, "Your session has expired"),
])
def test_fault_gives_its_page(ehr, faults, status, text):
    response = ehr.launch_to_list("pt-1001", faults=faults)
    assert response.status_code == status
    assert text in response.get_data(as_text=True)


def test_expired_token_with_refresh_recovers(ehr):
    response = ehr.launch_to_list("pt-1002", faults={"expired_token": True})
    assert response.status_code == 200
    assert _ids(response.get_data(as_text=True)) == ["is-1002-ct"]


def test_reused_launch_is_refused_by_the_ehr(ehr):
    path = ehr.ehr_launch("pt-1002")["launch_url"][len(APP_ORIGIN):]
    first = ehr.client.get(path)
    ehr.client.get(ehr.follow_authorize(first.headers["Location"]))
    second = ehr.client.get(path)
    callback = ehr.client.get(ehr.follow_authorize(second.headers["Location"]))
    assert callback.status_code == 502
    assert "The EHR refused the sign-in request" in callback.get_data(as_text=True)


def test_token_is_refreshed_when_it_expires(tmp_path):
    with live_server(lambda port: create_sandbox({"PUBLIC_BASE_URL": f"http://localhost:{port}",
                                                  "APP_ORIGIN": APP_ORIGIN, "ACCESS_TOKEN_LIFETIME": 11})) as port:
        ehr = _driver(f"http://localhost:{port}", tmp_path)
        response = ehr.launch_to_list("pt-1002")
        assert response.status_code == 200
        time.sleep(1.2)  # 11 s lifetime - 10 s margin: expired for the app
        again = ehr.client.get(f"/l/{_launch_id(response.get_data(as_text=True))}/?refresh=1")
        assert again.status_code == 200
        assert _ids(again.get_data(as_text=True)) == ["is-1002-ct"]


# -- standalone launch, confidential client, two launches ---------------------------------------
def test_standalone_launch_with_patient_picker(ehr):
    assert ehr.iss in ehr.client.get("/").get_data(as_text=True)
    started = ehr.client.get("/launch", query_string={"iss": ehr.iss})
    params = query_of(started.headers["Location"])
    assert params["aud"] == ehr.iss
    assert params["scope"].startswith("launch/patient ")
    callback = ehr.client.get(ehr.follow_authorize(started.headers["Location"], form={"patient": "pt-1002"}))
    assert callback.status_code == 303
    assert _ids(ehr.client.get(callback.headers["Location"]).get_data(as_text=True)) == ["is-1002-ct"]


def test_confidential_client_authenticates_with_client_secret_basic(sandbox_base, tmp_path, monkeypatch):
    monkeypatch.setenv("E2E_IMAGING_SECRET", "sandbox-secret")
    ehr = _driver(sandbox_base, tmp_path, client_id="imaging-app-confidential", client_secret_env="E2E_IMAGING_SECRET")
    response = ehr.launch_to_list("pt-1002")
    assert response.status_code == 200
    assert _ids(response.get_data(as_text=True)) == ["is-1002-ct"]


def test_confidential_client_with_a_wrong_secret_is_refused(sandbox_base, tmp_path, monkeypatch):
    monkeypatch.setenv("E2E_IMAGING_SECRET", "not-the-secret")
    ehr = _driver(sandbox_base, tmp_path, client_id="imaging-app-confidential", client_secret_env="E2E_IMAGING_SECRET")
    response = ehr.launch_to_list("pt-1002")
    assert response.status_code == 502
    assert "the token endpoint answered: invalid_client" in response.get_data(as_text=True)


def test_two_launches_in_one_cookie_jar_keep_their_patients(ehr):
    lid_a = _launch_id(ehr.launch_to_list("pt-1002").get_data(as_text=True))
    lid_b = _launch_id(ehr.launch_to_list("pt-1006").get_data(as_text=True))
    for _ in range(2):
        a = ehr.client.get(f"/l/{lid_a}/?refresh=1").get_data(as_text=True)
        b = ehr.client.get(f"/l/{lid_b}/?refresh=1").get_data(as_text=True)
        assert 'data-patient-id="pt-1002"' in a and _ids(a) == ["is-1002-ct"]
        assert 'data-patient-id="pt-1006"' in b and set(_ids(b)) == {"example", "example-xr"}


def test_a_diagnostic_report_in_fhir_context_opens_the_study_it_reports_on(ehr):
    page = ehr.launch_to_list("pt-1001", fhir_context=["DiagnosticReport/dr-1001-ct"]).get_data(as_text=True)
    match = re.search(r'<iframe id="viewer-frame"[^>]*src="([^"]+)"', page)
    assert match is not None
    ct_uid = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True).StudyInstanceUID
    assert query_of(match.group(1).replace("&amp;", "&"))["studyUID"] == ct_uid


def test_a_reopened_list_goes_out_compressed_to_a_browser_that_accepts_gzip(ehr):
    import gzip

    first = ehr.launch_to_list("pt-1001")
    list_url = first.request.path
    plain = ehr.client.get(list_url)
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
    assert "Accept-Encoding" in plain.headers["Vary"]
    packed = ehr.client.get(list_url, headers={"Accept-Encoding": "br;q=1, gzip;q=0.5"})
    assert packed.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed.headers["Vary"]
    assert gzip.decompress(packed.get_data()) == plain.get_data()
    assert len(packed.get_data()) < len(plain.get_data()) / 3
    refused = ehr.client.get(list_url, headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers and refused.get_data() == plain.get_data()
    study_id = _ids(plain.get_data(as_text=True))[0]
    selected = ehr.client.get(list_url, query_string={"study": study_id}, headers={"Accept-Encoding": "gzip"})
    assert selected.status_code == 200 and "Content-Encoding" not in selected.headers  # rendered per request
    assert f'data-study-id="{study_id}"' in selected.get_data(as_text=True)


def test_kept_row_html_follows_the_selection_exactly(sandbox_base, tmp_path):
    registration = sandbox_registration(APP_ORIGIN, sandbox_base, fhir={"study_list_ttl_seconds": 300})
    ehr = SandboxDriver(create_app(registration, secret_key="e2e", store_path=tmp_path / "launches.sqlite3")
                        .test_client(), sandbox_base)  # the list kept: its rows (and their HTML) reused
    first = ehr.launch_to_list("pt-1001")
    first.close()  # runs call_on_close, as a WSGI server does: the fetched list is kept in the launch
    list_url = first.request.path

    def get(**query) -> str:
        response = ehr.client.get(list_url, query_string=query)
        response.close()
        return response.get_data(as_text=True)
    plain = get()
    ids = _ids(plain)
    rows_of = lambda html: re.findall(r'(<li class="study[^"]*" data-study-id="[^"]+".*?</li>)', html, re.S)  # noqa: E731
    assert len(rows_of(plain)) == len(ids) == 10
    for chosen in (ids[3], ids[0], ids[3]):
        page = get(study=chosen)
        selected = re.findall(r'<li class="study[^"]* selected" data-study-id="([^"]+)"', page)
        ticked = re.findall(r'<input class="compare" type="checkbox" name="study" value="([^"]+)"[^>]* checked>', page)
        assert selected == [chosen] and ticked == [chosen]
        changed = [i for i, (a, b) in enumerate(zip(rows_of(plain), rows_of(page))) if a != b]
        assert changed == [ids.index(chosen)]  # every other row is byte for byte the default view's
