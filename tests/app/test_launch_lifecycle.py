"""Token expiry and refresh, launch isolation, the study list page, against a mocked EHR."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import parse_qs

import pytest
import requests
import responses

from app import create_app
from app.launches.errors import LaunchNotFound
from app.launches.state import PendingLaunch
from app.launches.sqlite_store import SqliteLaunchStore as LaunchStore
from tests.app.conftest import MockedEhr, good_token
from tests.support import AUTHORIZE, ISS, REDIRECT_URI, PATIENT, TOKEN, UID_A, UID_B, VIEWER, registration, searchset, study

FHIR_JSON = "application/fhir+json"


def _auth(call) -> str:
    return call.request.headers.get("Authorization", "")


def _routes(ehr, tokens_ok=("tok-good",), studies_by_patient=None, patients=(PATIENT,)):
    """Answer Patient reads and ImagingStudy searches; 401 unless the bearer token is in ``tokens_ok``."""
    studies_by_patient = studies_by_patient or {PATIENT: [study("is-1", UID_A), study("is-2", UID_B, "2023-01-01")]}

    def search(request):
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in tokens_ok:
            return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, ""
        patient = parse_qs(request.url.split("?", 1)[1])["patient"][0]
        return 200, {"Content-Type": FHIR_JSON}, json.dumps(searchset(studies_by_patient.get(patient, [])))

    def read(request):
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in tokens_ok:
            return 401, {}, ""
        patient = request.url.rsplit("/", 1)[1]
        return 200, {"Content-Type": FHIR_JSON}, json.dumps(
            {"resourceType": "Patient", "id": patient, "name": [{"family": f"Family-{patient}", "given": ["Pat"]}]})

    ehr.mock.add_callback(responses.GET, f"{ISS}/ImagingStudy", callback=search)
    ehr.mock.add_callback(responses.GET, re.compile(re.escape(ISS) + r"/Patient/[^/]+$"), callback=read)


def _token_posts(ehr):
    return [parse_qs(c.request.body) for c in ehr.calls_to("/oauth2/token", "POST")]


def _start(ehr, token_body, launch="L-1"):
    ehr.well_known()
    response = ehr.launch(launch=launch)
    state = parse_qs(response.headers["Location"].split("?", 1)[1])["state"][0]
    ehr.mock.add(responses.POST, TOKEN, json=token_body)
    callback = ehr.client.get("/callback", query_string={"code": "c-1", "state": state})
    assert callback.status_code == 303, callback.get_data(as_text=True)
    return callback.headers["Location"]


def test_expired_token_is_refreshed_once_and_rotated(ehr):
    _routes(ehr, tokens_ok=("tok-2",))
    page_url = _start(ehr, good_token(access_token="tok-1", expires_in="0", refresh_token="rt-1"))
    ehr.mock.replace(responses.POST, TOKEN, json={"access_token": "tok-2", "token_type": "bearer",
                                                  "expires_in": 3600, "refresh_token": "rt-2",
                                                  "scope": "launch patient/ImagingStudy.rs"})
    response = ehr.client.get(page_url)
    assert response.status_code == 200
    posts = _token_posts(ehr)
    assert posts[1]["grant_type"] == ["refresh_token"] and posts[1]["refresh_token"] == ["rt-1"]
    assert {_auth(c) for c in ehr.calls_to("/ImagingStudy")} == {"Bearer tok-2"}
    assert "FAMILY-PT-1001, Pat" in response.get_data(as_text=True)


def test_401_triggers_one_refresh_then_retry(ehr):
    _routes(ehr, tokens_ok=("tok-2",))
    page_url = _start(ehr, good_token(access_token="tok-1", refresh_token="rt-1"))
    ehr.mock.replace(responses.POST, TOKEN, json={"access_token": "tok-2", "token_type": "Bearer",
                                                  "expires_in": 3600, "refresh_token": "rt-2"})
    response = ehr.client.get(page_url)
    assert response.status_code == 200
    assert [_auth(c) for c in ehr.calls_to("/ImagingStudy")] == ["Bearer tok-1", "Bearer tok-2"]
    assert len(_token_posts(ehr)) == 2


def test_expired_without_refresh_token_asks_to_relaunch(ehr):
    _routes(ehr, tokens_ok=())
    page_url = _start(ehr, good_token(access_token="tok-1"))
    response = ehr.client.get(page_url)
    page = response.get_data(as_text=True)
    assert response.status_code == 401
    assert "Your session has expired" in page and "Relaunch the app from the EHR" in page
    assert len(_token_posts(ehr)) == 1


def test_refresh_refused_asks_to_relaunch_without_looping(ehr):
    _routes(ehr, tokens_ok=())
    page_url = _start(ehr, good_token(access_token="tok-1", expires_in=0, refresh_token="rt-1"))
    ehr.mock.replace(responses.POST, TOKEN, json={"error": "invalid_grant"}, status=400)
    response = ehr.client.get(page_url)
    assert response.status_code == 401
    assert len(_token_posts(ehr)) == 2
    assert ehr.calls_to("/ImagingStudy") == []


def test_refreshed_token_also_refused_ends_the_session(ehr):
    _routes(ehr, tokens_ok=())
    page_url = _start(ehr, good_token(access_token="tok-1", refresh_token="rt-1"))
    ehr.mock.replace(responses.POST, TOKEN, json={"access_token": "tok-2", "token_type": "Bearer", "expires_in": 60})
    response = ehr.client.get(page_url)
    assert response.status_code == 401
    assert len(ehr.calls_to("/ImagingStudy")) == 2
    assert len(_token_posts(ehr)) == 2


def test_two_launches_two_patients_one_cookie_jar(ehr):
    studies = {PATIENT: [study("is-a1", UID_A)],
               "pt-2002": [study("is-b1", UID_B, patient="pt-2002"), study("is-b2", "2.25.9", patient="pt-2002")]}
    _routes(ehr, tokens_ok=("tok-A", "tok-B"), studies_by_patient=studies)
    url_a = _start(ehr, good_token(access_token="tok-A"), launch="L-A")
    ehr.mock.replace(responses.POST, TOKEN, json=good_token(access_token="tok-B", patient="pt-2002"))
    response = ehr.launch(launch="L-B")
    state = parse_qs(response.headers["Location"].split("?", 1)[1])["state"][0]
    url_b = ehr.client.get("/callback", query_string={"code": "c-2", "state": state}).headers["Location"]
    assert url_a != url_b
    for _ in range(2):  # reload both, in alternation
        page_a = ehr.client.get(url_a + "?refresh=1").get_data(as_text=True)
        page_b = ehr.client.get(url_b + "?refresh=1").get_data(as_text=True)
        assert "FAMILY-PT-1001, Pat" in page_a and "FAMILY-PT-2002, Pat" not in page_a
        assert re.findall(r'data-study-id="([^"]+)"', page_a) == ["is-a1"]
        assert "FAMILY-PT-2002, Pat" in page_b and "FAMILY-PT-1001, Pat" not in page_b
        assert re.findall(r'data-study-id="([^"]+)"', page_b) == ["is-b1", "is-b2"]
    for call in ehr.calls_to("/ImagingStudy"):
        patient = parse_qs(call.request.url.split("?", 1)[1])["patient"][0]
        assert _auth(call) == {"pt-1001": "Bearer tok-A", "pt-2002": "Bearer tok-B"}[patient]


def test_launch_id_without_its_cookie_reveals_nothing(app, ehr):
    _routes(ehr)
    page_url = _start(ehr, good_token())
    calls_before = len(ehr.mock.calls)
    stranger = app.test_client()
    response = stranger.get(page_url)
    page = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "This launch is not available" in page
    assert "FAMILY" not in page and "is-1" not in page
    assert len(ehr.mock.calls) == calls_before


def test_launch_store_survives_restart(tmp_path):
    store = tmp_path / "store.sqlite3"
    app1 = create_app(registration(), secret_key="same", store_path=store)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        ehr = MockedEhr(app1.test_client(), mock)
        _routes(ehr)
        page_url = _start(ehr, good_token())
        cookie = ehr.client.get_cookie("imaging_app_session", domain="app.example.net")
        app2 = create_app(registration(), secret_key="same", store_path=store)
        client2 = app2.test_client()
        client2.set_cookie(cookie.key, cookie.value, domain="app.example.net")
        response = client2.get(page_url)
        assert response.status_code == 200
        assert "is-1" in response.get_data(as_text=True)


def test_expired_launches_are_purged(tmp_path):
    store = LaunchStore(tmp_path / "s.sqlite3", "k")
    pending = PendingLaunch(iss=ISS, launch=None, code_verifier="v" * 43, scope="launch/patient",
                            token_endpoint=TOKEN, authorize_url=AUTHORIZE, redirect_uri=REDIRECT_URI)
    launch_id = store.create_pending("browser", "state-1", pending, now=1000.0)
    assert store.check_pending(launch_id, "browser", now=1001.0).state == pending
    assert store.purge_expired(now=1000.0 + 601) == 1
    with pytest.raises(LaunchNotFound):
        store.check_pending(launch_id, "browser", now=1001.0)


def test_store_encrypts_tokens_at_rest(tmp_path, ehr, app):
    _routes(ehr)
    _start(ehr, good_token(access_token="tok-good-secret-value"))
    raw = app.extensions["imaging_app"].store.path.read_bytes()
    assert b"tok-good-secret-value" not in raw and PATIENT.encode() not in raw


def test_no_token_in_pages_cookies_or_logs(ehr, caplog):
    caplog.set_level(logging.DEBUG)
    _routes(ehr, tokens_ok=("tok-good",))
    page_url = _start(ehr, good_token(refresh_token="rt-secret"))
    page = ehr.client.get(page_url).get_data(as_text=True)
    cookie = ehr.client.get_cookie("imaging_app_session", domain="app.example.net").value
    for secret in ("tok-good", "rt-secret", "c-1"):
        assert secret not in page
        assert secret not in cookie
        assert all(secret not in record.getMessage() for record in caplog.records)


def test_fhir_context_preselects_the_study(ehr):
    _routes(ehr)
    page_url = _start(ehr, good_token(fhirContext=[{"reference": "ImagingStudy/is-2"}]))
    assert page_url.endswith("/?study=is-2")
    page = ehr.client.get(page_url).get_data(as_text=True)
    assert f'src="{VIEWER}?requestType=STUDY&amp;studyUID={UID_B}&amp;viewerType=IHE_BIR"' in page


def test_comparison_and_unknown_ids(ehr):
    _routes(ehr)
    page_url = _start(ehr, good_token())
    page = ehr.client.get(page_url, query_string=[("study", "is-1"), ("study", "is-2")]).get_data(as_text=True)
    assert f'src="{VIEWER}?requestType=STUDY&amp;studyUID={UID_A}%2C{UID_B}&amp;viewerType=IHE_BIR"' in page
    page = ehr.client.get(page_url, query_string={"study": "is-999"}).get_data(as_text=True)
    assert "A requested study is not in this patient's list and was not opened." in page
    assert 'id="viewer-frame"' in page and "src=" not in page.split('id="viewer-frame"')[1].split(">")[0]


def test_server_side_filters(ehr):
    studies = {PATIENT: [study("is-ct", UID_A, modality="CT", description="CT Head"),
                         study("is-mr", UID_B, modality="MR", description="MR Knee")]}
    _routes(ehr, studies_by_patient=studies)
    page_url = _start(ehr, good_token())
    by_modality = ehr.client.get(page_url, query_string={"modality": "MR"}).get_data(as_text=True)
    assert re.findall(r'data-study-id="([^"]+)"', by_modality) == ["is-mr"]
    by_text = ehr.client.get(page_url, query_string={"q": "head"}).get_data(as_text=True)
    assert re.findall(r'data-study-id="([^"]+)"', by_text) == ["is-ct"]


def test_no_banner_when_the_ehr_shows_its_own(ehr):
    _routes(ehr)
    page_url = _start(ehr, good_token(need_patient_banner=False))
    page = ehr.client.get(page_url).get_data(as_text=True)
    assert ehr.calls_to("/Patient/") == []
    assert 'class="banner"' not in page and "is-1" in page


def test_studies_of_another_patient_are_dropped(ehr):
    studies = {PATIENT: [study("is-1", UID_A), study("is-x", UID_B, patient="pt-other")]}
    _routes(ehr, studies_by_patient=studies)
    page = ehr.client.get(_start(ehr, good_token())).get_data(as_text=True)
    assert re.findall(r'data-study-id="([^"]+)"', page) == ["is-1"]
    assert "1 result(s) for another patient were ignored" in page


def test_empty_list_only_when_the_search_succeeded(ehr):
    _routes(ehr, studies_by_patient={PATIENT: []})
    page = ehr.client.get(_start(ehr, good_token())).get_data(as_text=True)
    assert "No imaging studies found for this patient." in page


@pytest.mark.parametrize("error, status, text", [
    (requests.ConnectTimeout("x"), 504, "did not answer"),
    (requests.ReadTimeout("x"), 504, "did not answer"),
    (requests.ConnectionError("refused"), 502, "could not be reached"),
])
def test_network_failures_get_a_page(ehr, error, status, text):
    ehr.well_known()
    page_url = _start(ehr, good_token())
    ehr.mock.get(f"{ISS}/ImagingStudy", body=error)
    ehr.mock.get(f"{ISS}/Patient/{PATIENT}", body=error)
    response = ehr.client.get(page_url)
    assert response.status_code == status
    assert text in response.get_data(as_text=True)


def test_token_endpoint_error_and_garbage(ehr):
    ehr.well_known()
    response = ehr.launch()
    state = parse_qs(response.headers["Location"].split("?", 1)[1])["state"][0]
    ehr.mock.post(TOKEN, body="<html>gateway</html>", status=200, content_type="text/html")
    page = ehr.client.get("/callback", query_string={"code": "c", "state": state})
    assert page.status_code == 502 and "not a JSON object" in page.get_data(as_text=True)
    response = ehr.launch()
    state = parse_qs(response.headers["Location"].split("?", 1)[1])["state"][0]
    ehr.mock.replace(responses.POST, TOKEN, json={"error": "invalid_grant", "error_description": "code <expired>"},
                     status=400)
    page = ehr.client.get("/callback", query_string={"code": "c", "state": state})
    assert page.status_code == 502
    assert "invalid_grant: code &lt;expired&gt;" in page.get_data(as_text=True)


@pytest.mark.parametrize("expires_in", [3600, "3600", "soon", None, "Infinity", float("-inf"), -5, True, [1]])
def test_expires_in_number_or_numeric_string(expires_in):
    from app.smart.tokens import parse_token_response
    body = {"access_token": "t", "token_type": "Bearer", "patient": PATIENT}
    if expires_in is not None:
        body["expires_in"] = expires_in
    grant = parse_token_response(body, requested="launch", now=1000.0)
    expected = 4600.0 if expires_in in (3600, "3600") else None
    assert grant.expires_at == expected and grant.scope == "launch"


def test_viewer_that_cannot_be_framed_opens_in_new_windows(tmp_path):
    app = create_app(registration(frameable=False), secret_key="k", store_path=tmp_path / "s.sqlite3")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        ehr = MockedEhr(app.test_client(), mock)
        _routes(ehr)
        response = ehr.client.get(_start(ehr, good_token()))
        page = response.get_data(as_text=True)
        assert 'id="viewer-frame"' not in page
        assert "frame-src 'none'" in response.headers["Content-Security-Policy"]
        expected = f"{VIEWER}?requestType=STUDY&amp;studyUID={UID_A}&amp;viewerType=IHE_BIR"
        match = re.search(r'<a class="study-link" tabindex="-1" href="([^"]+)"\s+data-viewer-url="([^"]+)" target="_blank"', page)
        assert match and match.group(1) == expected and match.group(2) == expected


def test_patient_request_link_uses_the_mrn_and_its_oid_issuer(ehr):
    ehr.well_known()
    ehr.mock.get(f"{ISS}/ImagingStudy", json=searchset([study("is-1", UID_A)]), content_type=FHIR_JSON)
    ehr.mock.get(f"{ISS}/Patient/{PATIENT}", content_type=FHIR_JSON, json={
        "resourceType": "Patient", "id": PATIENT, "identifier": [
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
             "system": "urn:oid:1.2.840.99.1", "value": "M-77"}]})
    page = ehr.client.get(_start(ehr, good_token())).get_data(as_text=True)
    expected = (f"{VIEWER}?requestType=PATIENT&amp;patientID=M-77%5E%5E%5E%261.2.840.99.1%26ISO"
                "&amp;viewerType=IHE_BIR")
    assert f'id="all-imaging" class="study-link-all" href="{expected}"' in page


def test_no_patient_request_without_an_oid_issuer(ehr):
    _routes(ehr)
    page = ehr.client.get(_start(ehr, good_token())).get_data(as_text=True)
    assert 'id="all-imaging"' not in page


def test_compare_limit_no_match_and_unviewable_selection_are_explained(ehr):
    studies = {PATIENT: [study(f"is-{n}", f"2.25.{n}", f"2024-01-0{n}T00:00:00Z") for n in range(1, 6)]
               + [study("is-nouid", None, "2020-01-01T00:00:00Z")]}
    _routes(ehr, studies_by_patient=studies)
    page_url = _start(ehr, good_token())
    five = ehr.client.get(page_url, query_string=[("study", f"is-{n}") for n in range(1, 6)]).get_data(as_text=True)
    assert "Only the first 4 selected studies are compared." in five
    assert "studyUID=2.25.1%2C2.25.2%2C2.25.3%2C2.25.4&amp;" in five
    none = ehr.client.get(page_url, query_string={"q": "zzz", "study": "is-1"}).get_data(as_text=True)
    assert '<p class="empty" id="no-match">No studies match the filter.</p>' in none
    assert '<input type="hidden" name="study" value="is-1">' in none
    unviewable = ehr.client.get(page_url, query_string={"study": "is-nouid"}).get_data(as_text=True)
    assert "This study cannot be shown in the viewer: No Study Instance UID recorded for this study." in unviewable


def test_real_read_timeout_is_a_504_and_nothing_identifying_is_logged(tmp_path, caplog):
    """A FHIR server that accepts the connection and never answers: 504 "did not answer", no hang."""
    import socket
    import threading
    import time as time_module
    caplog.set_level(logging.DEBUG)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    iss = f"http://127.0.0.1:{port}/fhir"
    held = []

    def accept_and_hold():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)

    threading.Thread(target=accept_and_hold, daemon=True).start()
    reg = registration(iss=iss)
    reg["fhir"]["read_timeout"] = 0.3
    app = create_app(reg, secret_key="k", store_path=tmp_path / "s.sqlite3")
    client = app.test_client()
    with responses.RequestsMock(assert_all_requests_are_fired=False, passthru_prefixes=(iss + "/ImagingStudy",
                                                                                       iss + "/Patient")) as mock:
        ehr = MockedEhr(client, mock)
        ehr.well_known(iss=iss)
        response = ehr.launch(iss=iss)
        state = parse_qs(response.headers["Location"].split("?", 1)[1])["state"][0]
        mock.post(TOKEN, json=good_token())
        page_url = client.get("/callback", query_string={"code": "c", "state": state}).headers["Location"]
        started = time_module.monotonic()
        page = client.get(page_url)
        assert time_module.monotonic() - started < 5
    listener.close()
    assert page.status_code == 504
    assert "did not answer" in page.get_data(as_text=True)
    assert all(PATIENT not in record.getMessage() for record in caplog.records)


def test_refused_connection_is_a_502_and_urllib3_does_not_log_patient_urls(tmp_path, caplog):
    import socket
    caplog.set_level(logging.DEBUG)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    iss = f"http://127.0.0.1:{port}/fhir"
    app = create_app(registration(iss=iss), secret_key="k", store_path=tmp_path / "s.sqlite3")
    client = app.test_client()
    with responses.RequestsMock(assert_all_requests_are_fired=False,
                                passthru_prefixes=(iss + "/ImagingStudy", iss + "/Patient")) as mock:
        ehr = MockedEhr(client, mock)
        ehr.well_known(iss=iss)
        state = parse_qs(ehr.launch(iss=iss).headers["Location"].split("?", 1)[1])["state"][0]
        mock.post(TOKEN, json=good_token())
        page = client.get(client.get("/callback", query_string={"code": "c", "state": state}).headers["Location"])
    assert page.status_code == 502
    assert "could not be reached" in page.get_data(as_text=True)
    assert all(PATIENT not in record.getMessage() for record in caplog.records)


def test_reopened_list_comes_from_the_launch_cache_until_refresh(ehr):
    _routes(ehr)
    page_url = _start(ehr, good_token())
    ehr.client.get(page_url).close()  # the list is stored once the page has been sent
    assert len(ehr.calls_to("/ImagingStudy")) == 1
    again = ehr.client.get(page_url).get_data(as_text=True)
    assert re.findall(r'data-study-id="([^"]+)"', again) == ["is-1", "is-2"]
    assert len(ehr.calls_to("/ImagingStudy")) == 1
    ehr.client.get(page_url, query_string={"refresh": "1"}).close()
    assert len(ehr.calls_to("/ImagingStudy")) == 2


@pytest.mark.parametrize("patient", ["p1\n", ".", "..", "a/b", "x" * 65, "pt 1", "pt-1001?x=1"])
def test_token_patient_must_be_a_whole_fhir_id(patient):
    from app.smart.errors import InvalidTokenResponse
    from app.smart.tokens import parse_token_response
    with pytest.raises(InvalidTokenResponse) as raised:
        parse_token_response({"access_token": "t", "token_type": "Bearer", "patient": patient}, requested="launch")
    assert raised.value.problem == "patient is not a valid FHIR id"


@pytest.mark.parametrize("access_token", ["tok\r\nSet-Cookie: x=1", "tok en", "tök", "t" * 16385])
def test_access_token_must_be_a_bearer_token(access_token):
    from app.smart.errors import InvalidTokenResponse
    from app.smart.tokens import parse_token_response
    with pytest.raises(InvalidTokenResponse):
        parse_token_response({"access_token": access_token, "token_type": "Bearer", "patient": PATIENT},
                             requested="launch")


def test_invalid_patient_in_the_token_response_gives_a_page_and_no_search(ehr):
    ehr.well_known()
    _routes(ehr)
    response = ehr.authorized(good_token(patient="p1\n"))
    page = response.get_data(as_text=True)
    assert response.status_code == 502
    assert "The token response of the code exchange cannot be used: patient is not a valid FHIR id." in page
    assert ehr.calls_to("/ImagingStudy") == []
