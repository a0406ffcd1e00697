"""A 401 on a thumbnail: the launch's SMART token is renewed once and the chain asked again; PACS credentials
from the environment are not renewed (no thumbnail). Mocked EHR and PACS (responses), then the live sandbox
with its clock moved past the token's lifetime. Every upstream request is counted."""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qsl

import pytest
import responses
from PIL import Image

import sandbox.clock
from app import create_app
from app.launches.context import LaunchContext
from app.outbound import OutboundClient
from sandbox.records import MRN_SYSTEM, PATIENT_ID_ISSUER_OID
from tests.app.conftest import MockedEhr, good_token
from tests.app.test_end_to_end import _ids
from tests.dicomweb.test_sandbox_images import _driver, _launch_id, _thumbnail_urls
from tests.support import ISS, PATIENT, TOKEN, WELL_KNOWN, registration, searchset, study

PACS = "https://pacs.example.org/dicom-web"
UID = "1.2.840.5"
THUMB = f"{PACS}/studies/{UID}/thumbnail"


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("L", (64, 64), 180).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def make_ehr(tmp_path, monkeypatch):
    monkeypatch.setenv("PACS_AUTH", "pacs:s3cret")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        def make(dicomweb: dict) -> MockedEhr:
            doc = registration()
            doc["ehrs"][0]["dicomweb"] = {"base_url": PACS, **dicomweb}
            app = create_app(doc, secret_key="test-secret", store_path=tmp_path / "launches.sqlite3")
            ehr = MockedEhr(app.test_client(), mock)
            ehr.well_known(WELL_KNOWN)
            mock.get(f"{ISS}/ImagingStudy", json=searchset([study("s-1", UID)]))
            return ehr
        yield make


def _list(ehr: MockedEhr) -> str:
    callback = ehr.authorized(good_token(need_patient_banner=False, refresh_token="r-1"))
    page = ehr.client.get(callback.headers["Location"])
    assert page.status_code == 200
    return _launch_id(page.get_data(as_text=True))


def _token_posts(ehr: MockedEhr) -> list[dict]:
    return [dict(parse_qsl(c.request.body)) for c in ehr.calls_to("/oauth2/token", "POST")]


def test_a_401_to_the_smart_token_renews_it_once_and_asks_again(make_ehr):
    ehr = make_ehr({"send_smart_token": True})
    launch = _list(ehr)
    ehr.mock.get(THUMB, status=401, json={})
    ehr.mock.get(THUMB, body=jpeg(), content_type="image/jpeg")
    ehr.mock.post(TOKEN, json=good_token(access_token="tok-renewed", refresh_token="r-2"))
    response = ehr.client.get(f"/l/{launch}/studies/s-1/thumbnail")
    assert (response.status_code, response.headers["Content-Type"]) == (200, "image/jpeg")
    calls = ehr.calls_to("/dicom-web/")
    assert [c.request.headers["Authorization"] for c in calls] == ["Bearer tok-good", "Bearer tok-renewed"]
    posts = _token_posts(ehr)
    assert [p["grant_type"] for p in posts] == ["authorization_code", "refresh_token"]
    assert posts[1]["refresh_token"] == "r-1"
    assert ehr.client.get(f"/l/{launch}/studies/s-1/thumbnail").status_code == 200
    assert len(ehr.calls_to("/dicom-web/")) == 2  # cached for the launch


def test_a_second_401_after_the_renewal_is_no_thumbnail(make_ehr):
    ehr = make_ehr({"send_smart_token": True})
    launch = _list(ehr)
    ehr.mock.get(THUMB, status=401, json={})
    ehr.mock.post(TOKEN, json=good_token(access_token="tok-renewed", refresh_token="r-2"))
    assert ehr.client.get(f"/l/{launch}/studies/s-1/thumbnail").status_code == 404
    assert len(ehr.calls_to("/dicom-web/")) == 2 and len(_token_posts(ehr)) == 2


def test_a_401_to_pacs_credentials_is_just_no_thumbnail(make_ehr):
    ehr = make_ehr({"basic_auth_env": "PACS_AUTH"})
    launch = _list(ehr)
    ehr.mock.get(THUMB, status=401, json={})
    assert ehr.client.get(f"/l/{launch}/studies/s-1/thumbnail").status_code == 404
    (call,) = ehr.calls_to("/dicom-web/")
    assert call.request.headers["Authorization"].startswith("Basic ")
    assert [p["grant_type"] for p in _token_posts(ehr)] == ["authorization_code"]  # nothing renewed


def test_against_the_sandbox_a_token_it_no_longer_accepts_is_renewed_once(sandbox_base, tmp_path, monkeypatch):
    """The sandbox's DICOMweb takes the SMART token (associated_endpoints). Its clock is moved past the token's
    lifetime (the app still believes the token valid), so the thumbnail's first request answers 401."""
    ehr = _driver(sandbox_base, tmp_path)
    page = ehr.launch_to_list("pt-1001")
    html = page.get_data(as_text=True)
    page.close()  # the list is kept once the response is closed (as a server does after sending it)
    url = _thumbnail_urls(html)[0]
    dicomweb: list[tuple[str, str]] = []
    others: list[str] = []
    real_get = OutboundClient.get

    def counting_get(self, request_url, *args, **kwargs):
        response = real_get(self, request_url, *args, **kwargs)
        if "/dicomweb/" in request_url:
            dicomweb.append((request_url.split("/dicomweb/", 1)[1].split("?")[0], str(response.status)))
        else:
            others.append(request_url)
        return response

    renewals: list[str] = []
    real_renew = LaunchContext.renew_token

    def counting_renew(self, stale):
        renewals.append(stale)
        return real_renew(self, stale)

    monkeypatch.setattr(OutboundClient, "get", counting_get)
    monkeypatch.setattr(LaunchContext, "renew_token", counting_renew)
    real_now = sandbox.clock.now
    monkeypatch.setattr(sandbox.clock, "now", lambda: real_now() + 3700)  # past the 3600 s lifetime
    response = ehr.client.get(url)
    assert (response.status_code, response.headers["Content-Type"]) == (200, "image/jpeg")
    study_path = url.split("/studies/")[1].split("/")[0]
    assert len(renewals) == 1
    assert [status for _, status in dicomweb] == ["401", "200"]  
    assert others == []  # no list re-read, no discovery: only DICOMweb (and the token endpoint, by POST)
    assert dicomweb[0][0] == dicomweb[1][0] and dicomweb[0][0].endswith("/thumbnail")
    assert study_path  # the list's study id, a launch-bound route
    low, high = Image.open(io.BytesIO(response.data)).convert("L").getextrema()
    assert high - low > 50
