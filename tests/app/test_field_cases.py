"""Every case of ../shared/cases/field-cases.md, against a mocked EHR (C01–C12)."""

from __future__ import annotations

import hashlib
import base64
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from app.smart.scopes import allows_search
from tests.app.conftest import good_token
from tests.app.progressive import settled_page
from tests.support import (AUTHORIZE, ISS, PATIENT, TOKEN, UID_A, UID_B, VIEWER, WELL_KNOWN, query_of,
                           searchset, study)

FHIR_JSON = "application/fhir+json"


def _search(ehr, body, status=200, content_type=FHIR_JSON, iss=ISS):
    ehr.mock.get(f"{iss}/ImagingStudy", json=body, status=status, content_type=content_type)


def _patient(ehr, iss=ISS, patient=PATIENT, name="Doe"):
    ehr.mock.get(f"{iss}/Patient/{patient}", json={"resourceType": "Patient", "id": patient,
                                                   "name": [{"family": name, "given": ["Jane"]}]},
                 content_type=FHIR_JSON)


def _open_list(ehr, callback):
    assert callback.status_code == 303, callback.get_data(as_text=True)
    return ehr.client.get(callback.headers["Location"])


class _Settled:
    """A list response read again once its background loader settled it (the page is sent after the first
    ImagingStudy page; older pages follow in the background: issue 14)."""

    def __init__(self, ehr, response):
        self.status_code = response.status_code
        self._page = settled_page(ehr.client, response)

    def get_data(self, as_text=False):
        return self._page if as_text else self._page.encode()


def _open_full_list(ehr, callback):
    """:func:`_open_list`, then the list once every page the app reads has been read."""
    return _Settled(ehr, _open_list(ehr, callback))


def _ids_in(page: str) -> list[str]:
    return re.findall(r'data-study-id="([^"]*)"', page)


# C01 -----------------------------------------------------------------------------------------------
def test_c01_token_without_patient_stops_before_any_search(ehr):
    ehr.well_known()
    body = {"access_token": "tok-no-patient", "token_type": "Bearer", "expires_in": 3600,
            "scope": "launch openid fhirUser patient/ImagingStudy.rs"}
    response = ehr.authorized(body)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "This launch carried no patient" in page
    assert "patient&#39;s chart" in page or "patient's chart" in page
    assert ehr.calls_to("ImagingStudy") == []
    assert "0 studies" not in page and "No imaging studies" not in page


# C02 -----------------------------------------------------------------------------------------------
def test_c02a_narrow_scope_is_reported_not_an_empty_list(ehr):
    ehr.well_known()
    _search(ehr, {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "forbidden", "diagnostics": "insufficient_scope"}]}, status=403)
    response = ehr.authorized({"access_token": "tok-narrow", "token_type": "Bearer", "expires_in": 570,
                               "scope": "openid fhirUser launch", "patient": PATIENT})
    page = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "The EHR did not grant access to imaging studies" in page
    assert "No imaging studies" not in page


def test_c02a_search_answering_403_is_reported(ehr):
    ehr.well_known()
    _patient(ehr)
    _search(ehr, {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "forbidden", "diagnostics": "insufficient_scope"}]}, status=403)
    response = _open_list(ehr, ehr.authorized(good_token()))
    page = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "The EHR did not grant access to imaging studies" in page
    assert "insufficient_scope" in page
    assert "No imaging studies" not in page


@pytest.mark.parametrize("scope", ["patient/ImagingStudy.rs", "patient/ImagingStudy.read", "patient/*.read",
                                   "patient/*.rs", "patient/*.*", "patient/ImagingStudy.cruds",
                                   "user/ImagingStudy.rs", "user/*.read", "launch patient/ImagingStudy.rs?status=available"])
def test_c02b_scopes_that_allow_listing(scope):
    assert allows_search(scope, "ImagingStudy") is True


@pytest.mark.parametrize("scope", ["patient/ImagingStudy.r", "patient/Patient.read", "patient/ImagingStudy.c",
                                   "launch", "", None, "patient/ImagingStudy.sr", "system/ImagingStudy.rs",
                                   "patient/ImagingStudyX.rs"])
def test_c02b_scopes_that_do_not(scope):
    assert allows_search(scope, "ImagingStudy") is False


@pytest.mark.parametrize("capabilities, expected, absent", [
    (["launch-ehr", "permission-v2"], "launch patient/ImagingStudy.rs patient/Patient.rs patient/DiagnosticReport.rs", ".read"),
    (["launch-ehr", "permission-v1"], "launch patient/ImagingStudy.read patient/Patient.read patient/DiagnosticReport.read", ".rs"),
    (["launch-ehr", "permission-v1", "permission-v2"], "launch patient/ImagingStudy.rs patient/Patient.rs patient/DiagnosticReport.rs", ".read"),
])
def test_c02c_scope_syntax_follows_the_servers_permission_capability(ehr, capabilities, expected, absent):
    ehr.well_known({**WELL_KNOWN, "capabilities": capabilities})
    response = ehr.launch()
    scope = query_of(response.headers["Location"])["scope"]
    assert scope == expected
    assert absent not in scope


# C03 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("launch_iss", ["https://ehr.example.org/api/FHIR/R4", "https://ehr.example.org/api/FHIR/R4/"])
def test_c03_aud_is_iss_verbatim_and_fhir_urls_have_one_slash(tmp_path, launch_iss):
    from app import create_app
    from tests.support import registration
    from tests.app.conftest import MockedEhr
    app = create_app(registration(iss="https://ehr.example.org/api/FHIR/R4"), secret_key="k",
                     store_path=tmp_path / "s.sqlite3")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        ehr = MockedEhr(app.test_client(), mock)
        ehr.well_known(iss="https://ehr.example.org/api/FHIR/R4")
        mock.get("https://ehr.example.org/api/FHIR/R4/ImagingStudy", json=searchset([study("is-1", UID_A)]),
                 content_type=FHIR_JSON)
        _patient(ehr, iss="https://ehr.example.org/api/FHIR/R4")
        launch = ehr.client.get(f"/launch?iss={launch_iss.replace(':', '%3A').replace('/', '%2F')}&launch=L-1")
        location = launch.headers["Location"]
        params = parse_qs(urlsplit(location).query)
        assert params["aud"] == [launch_iss]
        assert params["launch"] == ["L-1"]
        mock.post(TOKEN, json=good_token())
        callback = ehr.client.get("/callback", query_string={"code": "c", "state": params["state"][0]})
        listing = ehr.client.get(callback.headers["Location"])
        assert listing.status_code == 200
        searches = [c.request.url for c in mock.calls if "ImagingStudy" in c.request.url]
        assert searches and all(u.startswith("https://ehr.example.org/api/FHIR/R4/ImagingStudy?") for u in searches)
        assert "R4//" not in " ".join(c.request.url for c in mock.calls)


def test_c03_standalone_launch_sends_configured_base_as_aud(ehr):
    ehr.well_known()
    response = ehr.launch(launch=None)
    params = query_of(response.headers["Location"])
    assert params["aud"] == ISS
    assert "launch" not in params
    assert params["scope"].split()[0] == "launch/patient"


@pytest.mark.parametrize("bad_iss", ["https://ehr.example.org/fhir-evil", "https://ehr.example.org/fhir/../admin",
                                     "https://ehr.example.org.attacker.net/fhir", "http://ehr.example.org/fhir",
                                     "https://ehr.example.org:8443/fhir", "https://ehr.example.org/FHIR",
                                     "https://ehr.example.org/fhir?x=1", "javascript:alert(1)", "not a url"])
def test_c03_unregistered_iss_is_refused_without_any_outbound_request(ehr, bad_iss):
    response = ehr.launch(iss=bad_iss)
    assert response.status_code == 400
    assert "This app is not registered with that EHR" in response.get_data(as_text=True)
    assert len(ehr.mock.calls) == 0


def test_launch_without_iss_is_a_clear_400(ehr):
    response = ehr.client.get("/launch?launch=L-1")
    assert response.status_code == 400
    assert "This launch is incomplete" in response.get_data(as_text=True)
    assert len(ehr.mock.calls) == 0


# C04 -----------------------------------------------------------------------------------------------
def _capability_statement(rest_index: int = 0, authorize: str = AUTHORIZE, token: str = TOKEN) -> dict:
    security = {"extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                               "extension": [{"url": "authorize", "valueUri": authorize},
                                             {"url": "token", "valueUri": token}]}]}
    rest = [{"mode": "server"} for _ in range(rest_index)] + [{"mode": "server", "security": security}]
    return {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "rest": rest}


@pytest.mark.parametrize("rest_index", [0, 1])
def test_c04_falls_back_to_capability_statement(ehr, rest_index):
    ehr.mock.get(f"{ISS}/.well-known/smart-configuration", body="<html>Not found</html>", status=404,
                 content_type="text/html")
    ehr.mock.get(f"{ISS}/metadata", json=_capability_statement(rest_index), content_type=FHIR_JSON)
    response = ehr.launch()
    assert response.status_code == 303
    assert response.headers["Location"].startswith(AUTHORIZE + "?")
    state = query_of(response.headers["Location"])["state"]
    ehr.mock.post(TOKEN, json=good_token())
    callback = ehr.client.get("/callback", query_string={"code": "c-1", "state": state})
    assert callback.status_code == 303
    assert len(ehr.calls_to("/oauth2/token", "POST")) == 1


def test_c04_metadata_not_fetched_when_well_known_answers(ehr):
    ehr.well_known()
    ehr.launch()
    assert ehr.calls_to("/metadata") == []


def test_c04_neither_source_gives_a_clear_page(ehr):
    ehr.mock.get(f"{ISS}/.well-known/smart-configuration", body="nope", status=404, content_type="text/html")
    ehr.mock.get(f"{ISS}/metadata", json={"resourceType": "CapabilityStatement", "rest": [{"mode": "server"}]},
                 content_type=FHIR_JSON)
    response = ehr.launch()
    page = response.get_data(as_text=True)
    assert response.status_code == 502
    assert "SMART discovery failed for this server" in page
    assert "Traceback" not in page


def test_relative_endpoints_are_resolved_against_iss(ehr):
    ehr.well_known({**WELL_KNOWN, "authorization_endpoint": "../oauth2/authorize", "token_endpoint": "../oauth2/token"})
    response = ehr.launch()
    assert response.headers["Location"].startswith("https://ehr.example.org/oauth2/authorize?")


# C05 -----------------------------------------------------------------------------------------------
def test_c05a_every_request_asks_for_json(ehr):
    ehr.well_known()
    _patient(ehr)
    _search(ehr, searchset([study("is-1", UID_A)]))
    _open_list(ehr, ehr.authorized(good_token()))
    gets = [c for c in ehr.mock.calls if c.request.method == "GET"]
    assert len(gets) == 3
    for call in gets:
        accept = call.request.headers["Accept"]
        assert "application/fhir+json" in accept or "application/json" in accept
        assert "xml" not in accept


@pytest.mark.parametrize("status, body, expected", [
    (502, "<html><script>alert(1)</script></html>", "The FHIR server answered HTTP 502 for the imaging study search."),
    (200, "<html><form>Proxy login</form></html>",
     "The FHIR server answered the imaging study search with an unexpected content type (text/html) instead of "
     "FHIR JSON."),
], ids=["c05b-502-html", "c05c-200-html"])
def test_c05bc_html_answers_are_named_and_escaped(ehr, status, body, expected):
    ehr.well_known()
    _patient(ehr)
    ehr.mock.get(f"{ISS}/ImagingStudy", body=body, status=status, content_type="text/html")
    response = _open_list(ehr, ehr.authorized(good_token()))
    page = response.get_data(as_text=True)
    assert response.status_code == 502
    assert expected in page
    assert "<script>" not in page and "<form>Proxy" not in page
    assert "No imaging studies" not in page and "Traceback" not in page


# C06 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("next_url", ["http://localhost:8080/fhir?_getpages=9f2c&_getpagesoffset=2&_count=2",
                                      "https://attacker.example.net/fhir?page=2"])
def test_c06_next_link_on_another_origin_is_not_followed(ehr, next_url):
    ehr.well_known()
    _patient(ehr)
    _search(ehr, searchset([study("is-1", UID_A), study("is-2", UID_B, "2023-05-01T00:00:00Z")],
                           next_url=next_url, total=3))
    response = _open_list(ehr, ehr.authorized(good_token()))
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert _ids_in(page) == ["is-1", "is-2"]
    assert "List incomplete" in page and "(2 of 3)" in page
    for call in ehr.mock.calls:
        assert call.request.url.startswith("https://ehr.example.org/"), call.request.url


# C07 -----------------------------------------------------------------------------------------------
def test_c07_repeating_next_link_stops_paging_and_dedupes(ehr):
    ehr.well_known()
    _patient(ehr)
    loop_url = f"{ISS}/ImagingStudy?patient={PATIENT}&ct=QUJD"
    first = searchset([study("is-1", UID_A, "2024-03-01T00:00:00Z"), study("is-2", UID_B, "2024-02-01T00:00:00Z")],
                      next_url=loop_url)
    again = searchset([study("is-3", "2.25.3", "2024-01-01T00:00:00Z"), study("is-2", UID_B, "2024-02-01T00:00:00Z")],
                      next_url=loop_url)

    def answer(request):
        import json
        body = again if "ct=QUJD" in request.url else first
        return 200, {"Content-Type": FHIR_JSON}, json.dumps(body)

    ehr.mock.add_callback(responses.GET, f"{ISS}/ImagingStudy", callback=answer)
    first = _open_list(ehr, ehr.authorized(good_token()))
    assert _ids_in(first.get_data(as_text=True)) == ["is-1", "is-2"]  # sent after the first page
    assert "Loading older studies" in first.get_data(as_text=True)
    page = _Settled(ehr, first).get_data(as_text=True)
    assert _ids_in(page) == ["is-1", "is-2", "is-3"]
    assert len(ehr.calls_to("/ImagingStudy")) == 2  # the first page, the looping page once
    assert "the server repeated a page link; paging was stopped" in page


@pytest.mark.parametrize("status, body, reason", [
    (500, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception",
                                                          "diagnostics": "database down"}]},
     "page 2 could not be read (HTTP 500: database down)"),
    (200, {"resourceType": "OperationOutcome", "issue": []}, "page 2 was not a Bundle"),
])
def test_a_failed_later_page_keeps_the_first_and_says_the_list_is_incomplete(ehr, status, body, reason):
    ehr.well_known()
    _patient(ehr)
    next_url = f"{ISS}/ImagingStudy?patient={PATIENT}&page=2"
    first = searchset([study("is-1", UID_A), study("is-2", UID_B, "2023-05-01T00:00:00Z")], next_url=next_url,
                      total=4)

    def answer(request):
        import json
        if "page=2" in request.url:
            return status, {"Content-Type": FHIR_JSON}, json.dumps(body)
        return 200, {"Content-Type": FHIR_JSON}, json.dumps(first)

    ehr.mock.add_callback(responses.GET, f"{ISS}/ImagingStudy", callback=answer)
    response = _open_full_list(ehr, ehr.authorized(good_token()))
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert _ids_in(page) == ["is-1", "is-2"]
    assert f"<strong>List incomplete:</strong> {reason}." in page
    assert "(2 of 4)" in page
    assert len(ehr.calls_to("/ImagingStudy")) == 2


def test_page_cap_is_enforced_and_reported(ehr):
    ehr.well_known()
    _patient(ehr)
    counter = {"n": 0}

    def answer(request):
        import json
        counter["n"] += 1
        n = counter["n"]
        body = searchset([study(f"is-{n}", f"2.25.{n}")], next_url=f"{ISS}/ImagingStudy?page={n + 1}")
        return 200, {"Content-Type": FHIR_JSON}, json.dumps(body)

    ehr.mock.add_callback(responses.GET, f"{ISS}/ImagingStudy", callback=answer)
    page = _open_full_list(ehr, ehr.authorized(good_token())).get_data(as_text=True)
    assert counter["n"] == 5  # registration(): max_pages 5
    assert "the app stops after 5 pages" in page


# C08 -----------------------------------------------------------------------------------------------
def test_c08_only_matching_imaging_studies_are_rows(ehr):
    ehr.well_known()
    _patient(ehr)
    bundle = searchset([
        study("is-10", UID_A, "2024-02-01T00:00:00Z"),
        {"resourceType": "Patient", "id": PATIENT},
        {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "informational",
                                                         "diagnostics": "Results limited to 2 years"}]},
        study("is-12", UID_B, "2024-01-01T00:00:00Z"),
    ], modes=["match", "include", "outcome", None])
    _search(ehr, bundle)
    response = _open_list(ehr, ehr.authorized(good_token()))
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert _ids_in(page) == ["is-10", "is-12"]
    assert "Results limited to 2 years" in page


# C09 -----------------------------------------------------------------------------------------------
def test_c09_uid_with_and_without_urn_oid_gives_the_same_viewer_url(ehr):
    ehr.well_known()
    _patient(ehr)
    prefixed = study("is-a", None, "2024-02-01T00:00:00Z",
                     identifier=[{"system": "urn:dicom:uid", "value": f"urn:oid:{UID_A}"}])
    bare = study("is-b", None, "2024-01-01T00:00:00Z", identifier=[{"system": "urn:dicom:uid", "value": UID_A}])
    invalid = study("is-c", None, "2023-01-01T00:00:00Z",
                    identifier=[{"system": "urn:dicom:uid", "value": "urn:oid:2.25.abc"}])
    _search(ehr, searchset([prefixed, bare, invalid]))
    page = _open_list(ehr, ehr.authorized(good_token())).get_data(as_text=True)
    expected = (f"{VIEWER}?requestType=STUDY&amp;studyUID=2.25.17888725185605931195712849663681676109"
                "&amp;viewerType=IHE_BIR")
    rows = page.split('<li class="study')[1:]
    assert f'data-viewer-url="{expected}"' in rows[0]
    assert f'data-viewer-url="{expected}"' in rows[1]
    assert "data-viewer-url" not in rows[2]
    assert "not a valid DICOM UID" in rows[2]


# C10 -----------------------------------------------------------------------------------------------
def test_c10_launch_in_iframe_sets_a_partitioned_cross_site_cookie(ehr):
    ehr.well_known()
    response = ehr.launch(headers={"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "cross-site"})
    cookie = response.headers["Set-Cookie"]
    for flag in ("SameSite=None", "Secure", "HttpOnly", "Partitioned"):
        assert flag in cookie
    assert "X-Frame-Options" not in response.headers
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://ehr.example.org" in csp
    # the frame first checks that the cookie came back, then goes to authorize
    assert response.status_code == 303 and response.headers["Location"].startswith("/launch/check/")
    check = ehr.client.get(response.headers["Location"])
    assert check.status_code == 303 and check.headers["Location"].startswith(AUTHORIZE + "?")


def test_c10_cookie_dropped_in_iframe_offers_a_new_window_instead_of_looping(app, ehr):
    ehr.well_known()
    response = ehr.launch(headers={"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "cross-site"})
    cookieless = app.test_client()
    check = cookieless.get(response.headers["Location"])
    page = check.get_data(as_text=True)
    assert check.status_code == 409
    assert "Open in a new window" in page
    assert 'target="imaging-app-launch"' in page
    assert "/launch?iss=https%3A%2F%2Fehr.example.org%2Ffhir&amp;launch=L-1" in page
    assert ehr.calls_to("/oauth2/token", "POST") == []


# C11 -----------------------------------------------------------------------------------------------
def _pending(ehr):
    ehr.well_known()
    response = ehr.launch()
    ehr.mock.post(TOKEN, json=good_token())
    return query_of(response.headers["Location"])["state"]


def test_c11a_wrong_state(ehr):
    _pending(ehr)
    response = ehr.client.get("/callback", query_string={"code": "c-1", "state": "S-evil"})
    assert response.status_code == 400
    assert "Could not verify this launch, please relaunch" in response.get_data(as_text=True)
    assert ehr.calls_to("/oauth2/token", "POST") == []


def test_c11b_no_cookie(app, ehr):
    state = _pending(ehr)
    response = app.test_client().get("/callback", query_string={"code": "c-1", "state": state})
    assert response.status_code == 400
    assert "Could not verify this launch, please relaunch" in response.get_data(as_text=True)
    assert ehr.calls_to("/oauth2/token", "POST") == []


def test_c11c_access_denied_is_explained_and_escaped(ehr):
    state = _pending(ehr)
    response = ehr.client.get("/callback", query_string={
        "error": "access_denied", "error_description": "User declined <b>now</b>", "state": state})
    page = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "Access was denied in the EHR" in page
    assert "User declined &lt;b&gt;now&lt;/b&gt;" in page
    assert ehr.calls_to("/oauth2/token", "POST") == []


def test_c11d_bare_callback(ehr):
    _pending(ehr)
    response = ehr.client.get("/callback")
    assert response.status_code == 400
    assert "Could not verify this launch" in response.get_data(as_text=True)
    assert ehr.calls_to("/oauth2/token", "POST") == []


def test_c11e_replayed_callback_sends_no_second_token_request(ehr):
    state = _pending(ehr)
    first = ehr.client.get("/callback", query_string={"code": "c-1", "state": state})
    assert first.status_code == 303
    replay = ehr.client.get("/callback", query_string={"code": "c-1", "state": state})
    assert replay.status_code == 400
    assert len(ehr.calls_to("/oauth2/token", "POST")) == 1


def test_state_expires_after_ten_minutes(ehr, monkeypatch):
    import time as time_module
    state = _pending(ehr)
    real = time_module.time
    monkeypatch.setattr(time_module, "time", lambda: real() + 601)
    response = ehr.client.get("/callback", query_string={"code": "c-1", "state": state})
    assert response.status_code == 400
    assert ehr.calls_to("/oauth2/token", "POST") == []


# C12 -----------------------------------------------------------------------------------------------
def test_c12_check_value():
    verifier = "qa-fixture-verifier-0123456789-abcdefghijklmnopqrstuvwxyz_ABC~"
    assert create_s256_code_challenge(verifier) == "7nPi2IimOYLLFRHEhj3QX1p8c3MKVCKSJBxZiLLiX0g"


@pytest.mark.parametrize("methods", [None, ["S256"]])
def test_c12_pkce_s256_always_with_a_fresh_matching_verifier(ehr, methods):
    well_known = {k: v for k, v in WELL_KNOWN.items() if k != "code_challenge_methods_supported"}
    if methods is not None:
        well_known["code_challenge_methods_supported"] = methods
    ehr.well_known(well_known)
    ehr.mock.post(TOKEN, json=good_token())
    verifiers, challenges = [], []
    for _ in range(2):
        params = query_of(ehr.launch().headers["Location"])
        assert params["code_challenge_method"] == "S256"
        challenges.append(params["code_challenge"])
        ehr.client.get("/callback", query_string={"code": "c-1", "state": params["state"]})
        body = parse_qs(ehr.calls_to("/oauth2/token", "POST")[-1].request.body)
        verifiers.append(body["code_verifier"][0])
    for verifier, challenge in zip(verifiers, challenges, strict=True):
        assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier)
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        assert digest == challenge
    assert verifiers[0] != verifiers[1]


def test_discovered_endpoints_must_be_https(ehr):
    ehr.well_known({**WELL_KNOWN, "token_endpoint": "http://ehr.example.org/oauth2/token"})
    response = ehr.launch()
    assert response.status_code == 502
    assert "is not https" in response.get_data(as_text=True)


def _paged_search(ehr, pages: int, per_page: int, delay: float = 0.0):
    """A search answering ``pages`` pages of ``per_page`` studies, each after ``delay`` seconds."""
    import json
    import time

    def answer(request):
        time.sleep(delay)
        page = int(request.url.rsplit("page=", 1)[1]) if "page=" in request.url else 1
        resources = [study(f"is-{page}-{i}", f"2.25.{page}{i}", f"20{10 + page}-01-0{i + 1}T00:00:00Z")
                     for i in range(per_page)]
        next_url = f"{ISS}/ImagingStudy?patient={PATIENT}&page={page + 1}" if page < pages else None
        return 200, {"Content-Type": FHIR_JSON}, json.dumps(searchset(resources, next_url=next_url))

    ehr.mock.add_callback(responses.GET, f"{ISS}/ImagingStudy", callback=answer)


def test_a_slow_ehr_stops_paging_at_the_list_deadline(ehr_with):
    ehr = ehr_with(list_deadline_seconds=0.5)
    _patient(ehr)
    _paged_search(ehr, pages=5, per_page=2, delay=0.3)
    page = _open_full_list(ehr, ehr.authorized(good_token())).get_data(as_text=True)
    assert "the EHR was too slow; the app stopped after 2 pages" in page
    assert len(_ids_in(page)) == 4 and len(ehr.calls_to("/ImagingStudy")) == 2


def test_the_study_cap_keeps_what_the_ehr_sent_first_and_says_so(ehr_with):
    ehr = ehr_with(max_studies=3)
    _patient(ehr)
    _paged_search(ehr, pages=3, per_page=2)
    page = _open_full_list(ehr, ehr.authorized(good_token())).get_data(as_text=True)
    assert "List incomplete:</strong> the app shows at most 3 studies." in page
    assert _ids_in(page) == ["is-2-0", "is-1-1", "is-1-0"]


def test_a_refused_patient_read_is_a_banner_notice_not_an_imaging_scope_problem(ehr):
    ehr.well_known()
    ehr.mock.get(f"{ISS}/Patient/{PATIENT}", status=403, content_type=FHIR_JSON,
                 json={"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden"}]})
    _search(ehr, searchset([study("is-1", UID_A)]))
    response = _open_list(ehr, ehr.authorized(good_token()))
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert _ids_in(page) == ["is-1"]
    assert "The EHR did not allow reading the patient&#39;s details." in page
    assert "did not grant access to imaging studies" not in page
