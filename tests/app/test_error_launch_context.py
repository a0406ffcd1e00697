"""Error pages name this browser's launch (EHR, patient) and carry a Relaunch button only where one can work."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs

import responses

from app import create_app
from tests.app.conftest import MockedEhr, good_token
from tests.support import ISS, PATIENT, TOKEN, registration, searchset, study

FHIR_JSON = "application/fhir+json"


def _start(ehr, token_body, launch="L-1"):
    ehr.well_known()
    response = ehr.launch(launch=launch)
    state = parse_qs(response.headers["Location"].split("?", 1)[1])["state"][0]
    ehr.mock.add(responses.POST, TOKEN, json=token_body)
    callback = ehr.client.get("/callback", query_string={"code": "c-1", "state": state})
    assert callback.status_code == 303, callback.get_data(as_text=True)
    return callback.headers["Location"]


def _patient(ehr, status=200):
    ehr.mock.get(re.compile(re.escape(ISS) + r"/Patient/[^/]+$"), status=status, content_type=FHIR_JSON,
                 body=json.dumps({"resourceType": "Patient", "id": PATIENT,
                                  "name": [{"family": "Lovelace", "given": ["Ada"]}]}))


def _copy_cookie(source, target) -> None:
    cookie = next(c for c in source._cookies.values() if c.key == "imaging_app_session")
    target.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)


def _text(html: str, element_id: str) -> str | None:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', html)
    return found.group(1) if found else None


def test_expired_ehr_launch_names_ehr_and_patient_and_says_relaunch_from_the_ehr(ehr):
    ehr.mock.get(f"{ISS}/ImagingStudy", status=401)
    _patient(ehr, status=401)
    page_url = _start(ehr, good_token(access_token="tok-1"))
    response = ehr.client.get(page_url)
    html = response.get_data(as_text=True)
    assert response.status_code == 401
    assert _text(html, "error-ehr") == "Example EHR"
    assert _text(html, "error-patient") == f"patient {PATIENT}"  # the banner was never read
    assert 'id="relaunch"' not in html  # the EHR's launch id is used up: no button that cannot work
    assert "open patient pt-1001\u2019s chart in Example EHR and start the app there" in html


def test_standalone_launch_gets_a_relaunch_button_and_the_banner_name(ehr):
    studies = {"n": 0}

    def search(request):
        studies["n"] += 1
        if studies["n"] == 1:
            return 200, {"Content-Type": FHIR_JSON}, json.dumps(searchset([study("is-1", "1.2.3")]))
        return 503, {}, ""
    ehr.mock.add_callback(responses.GET, f"{ISS}/ImagingStudy", callback=search)
    _patient(ehr)
    page_url = _start(ehr, good_token(), launch=None)
    first = ehr.client.get(page_url)
    first.close()  # runs call_on_close: the list is kept in the launch
    assert first.status_code == 200
    # the list (with its banner) is kept after the response; a forced refresh then finds the EHR down
    response = ehr.client.get(page_url, query_string={"refresh": "1"})
    html = response.get_data(as_text=True)
    assert response.status_code == 502, html
    assert _text(html, "error-ehr") == "Example EHR"
    assert _text(html, "error-patient") == "LOVELACE, Ada"
    assert re.search(r'<a class="button" id="relaunch" href="/launch\?iss=https%3A%2F%2Fehr.example.org%2Ffhir">'
                     r'Relaunch</a>', html), html


def test_another_browser_sees_no_name_of_the_launch(ehr, app):
    ehr.mock.get(f"{ISS}/ImagingStudy", status=401)
    _patient(ehr, status=401)
    page_url = _start(ehr, good_token(access_token="tok-1"))
    response = app.test_client().get(page_url)
    html = response.get_data(as_text=True)
    assert response.status_code == 404
    assert 'id="error-launch"' not in html and PATIENT not in html and "Example EHR" not in html


def test_registration_removed_names_the_fhir_server_without_a_button(tmp_path):
    store = tmp_path / "launches.sqlite3"
    first = create_app(registration(), secret_key="test-secret", store_path=store)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        ehr = MockedEhr(first.test_client(), mock)
        page_url = _start(ehr, good_token(), launch=None)
        other = registration(iss="https://other.example.org/fhir")
        second = create_app(other, secret_key="test-secret", store_path=store)
        client = second.test_client()
        _copy_cookie(ehr.client, client)
        response = client.get(page_url)
    html = response.get_data(as_text=True)
    assert response.status_code == 404, html
    assert _text(html, "error-ehr") == "https://ehr.example.org"
    assert 'id="relaunch"' not in html


def test_two_quick_new_window_launches_explain_the_replaced_sign_in(ehr, app):
    """Two windows opened at once: both /launch requests carry no cookie, so each sets its own binding; the
    browser keeps the last. The first window's callback then says plainly that a newer sign-in replaced it."""
    ehr.well_known()
    first, second = app.test_client(), app.test_client()
    one = first.get("/launch", query_string={"iss": ISS, "launch": "L-1"})
    two = second.get("/launch", query_string={"iss": ISS, "launch": "L-1"})
    _copy_cookie(second, first)  # the browser keeps the last Set-Cookie
    state_one = parse_qs(one.headers["Location"].split("?", 1)[1])["state"][0]
    response = first.get("/callback", query_string={"code": "c-1", "state": state_one})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "This browser did not start the launch" not in html
    assert "A newer sign-in was started in this browser at about the same time" in html
    assert _text(html, "error-ehr") == "Example EHR"
    assert 'id="relaunch"' not in html  # an EHR launch
    assert two.status_code == 303


def test_cookie_blocked_page_opens_one_named_window():
    from pathlib import Path
    html = (Path(__file__).resolve().parents[2] / "templates" / "cookie_blocked.html").read_text()
    assert 'target="imaging-app-launch"' in html and 'target="_blank"' not in html and 'rel="noopener"' not in html
