"""Images at a glance against the live sandbox EHR: Endpoints included, thumbnails with the SMART token (the
sandbox's DICOMweb is in its associated_endpoints), and the QIDO-RS list when ImagingStudy is hidden."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from app import create_app
from sandbox.records import MRN_SYSTEM, PATIENT_ID_ISSUER_OID
from tests.app.test_end_to_end import APP_ORIGIN, SandboxDriver, _ids
from tests.support import live_sandbox as _sandbox
from tests.support import sandbox_registration

PT_1001_COUNT = 10  # the sandbox PACS's studies of pt-1001 (sandbox/README.md, DICOMweb)


@pytest.fixture(scope="module")
def hidden_base():
    with _sandbox(HIDE_IMAGINGSTUDY=True) as port:
        yield f"http://localhost:{port}"


def _driver(base: str, tmp_path, **ehr_extra) -> SandboxDriver:
    doc = sandbox_registration(APP_ORIGIN, base, fhir={"page_size": 100, "connect_timeout": 2, "read_timeout": 10},
                               **ehr_extra)
    doc["ehrs"][0]["scopes"] = ["online_access", "patient/Endpoint.rs"]
    app = create_app(doc, secret_key="images", store_path=tmp_path / "launches.sqlite3")
    return SandboxDriver(app.test_client(), base)


def _launch_id(page: str) -> str:
    return re.search(r'data-launch-id="([^"]+)"', page).group(1)


def _thumbnail_urls(page: str) -> list[str]:
    return re.findall(r'<img class="study-thumbnail" data-thumbnail src="([^"]+)" loading="lazy"', page)


def test_the_list_shows_lazy_thumbnails_served_with_the_smart_token(sandbox_base, tmp_path):
    ehr = _driver(sandbox_base, tmp_path)
    page = ehr.launch_to_list("pt-1001")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    launch = _launch_id(html)
    urls = _thumbnail_urls(html)
    assert len(urls) == PT_1001_COUNT  # studies the PACS holds, each with a UID
    assert urls[0].startswith(f"/l/{launch}/studies/") and urls[0].endswith("/thumbnail")
    assert 'width="64" height="64" alt="Preview of ' in html
    assert "thumbnails.js" in html
    response = ehr.client.get(urls[0])
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["Cache-Control"] == "private, max-age=300"
    assert "img-src 'self'" in response.headers["Content-Security-Policy"]
    image = Image.open(io.BytesIO(response.data))
    assert image.format == "JPEG" and max(image.size) <= 128
    low, high = image.convert("L").getextrema()
    assert high - low > 50  # real pixels, not a blank box


def test_a_study_outside_the_launchs_list_gets_no_thumbnail(sandbox_base, tmp_path):
    ehr = _driver(sandbox_base, tmp_path)
    html = ehr.launch_to_list("pt-1001").get_data(as_text=True)
    launch = _launch_id(html)
    other = _driver(sandbox_base, tmp_path / "b").launch_to_list("pt-1002").get_data(as_text=True)
    other_study = _ids(other)[0]
    assert ehr.client.get(f"/l/{launch}/studies/{other_study}/thumbnail").status_code == 404
    assert ehr.client.get(f"/l/{launch}/studies/nope/thumbnail").status_code == 404


def test_without_imagingstudy_the_list_comes_from_qido_rs(hidden_base, tmp_path):
    dicomweb = {"base_url": f"{hidden_base}/dicomweb",
                "patient_identifiers": [{"system": MRN_SYSTEM, "issuer_of_patient_id": PATIENT_ID_ISSUER_OID}]}
    ehr = _driver(hidden_base, tmp_path, dicomweb=dicomweb)
    page = ehr.launch_to_list("pt-1001")
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html[:500]
    ids = _ids(html)
    assert len(ids) == PT_1001_COUNT and all(re.fullmatch(r"[0-9.]+", i) for i in ids)  # Study Instance UIDs
    assert f"these studies come from the PACS at {hidden_base}" in html
    assert "another patient" not in html
    response = ehr.client.get(_thumbnail_urls(html)[0])
    assert (response.status_code, response.headers["Content-Type"]) == (200, "image/jpeg")


def test_without_imagingstudy_and_without_a_mapping_the_error_stays(hidden_base, tmp_path):
    page = _driver(hidden_base, tmp_path).launch_to_list("pt-1001")
    assert page.status_code == 502  # the ImagingStudy search failure page, as before


@pytest.fixture(scope="module")
def undeclared_base():
    with _sandbox(UNDECLARED_IMAGINGSTUDY=True) as port:
        yield f"http://localhost:{port}"


def test_an_imagingstudy_search_missing_from_the_capabilitystatement_lists_from_qido_rs(undeclared_base, tmp_path):
    import requests
    metadata = requests.get(f"{undeclared_base}/fhir/metadata", timeout=5).json()
    assert "ImagingStudy" not in {r["type"] for r in metadata["rest"][0]["resource"]}
    plain = _driver(undeclared_base, tmp_path / "plain").launch_to_list("pt-1001").get_data(as_text=True)
    assert _ids(plain) == []  # the search alone answers an empty searchset: without QIDO-RS, no studies
    dicomweb = {"base_url": f"{undeclared_base}/dicomweb",
                "patient_identifiers": [{"system": MRN_SYSTEM, "issuer_of_patient_id": PATIENT_ID_ISSUER_OID}]}
    page = _driver(undeclared_base, tmp_path, dicomweb=dicomweb).launch_to_list("pt-1001")
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html[:500]
    assert len(_ids(html)) == PT_1001_COUNT
    assert f"these studies come from the PACS at {undeclared_base}" in html


@pytest.mark.parametrize("allowed,expected", [(True, "sandbox"), (False, "configured")])
def test_the_sandboxs_iid_endpoint_is_the_viewer_only_when_its_origin_is_allowed(sandbox_base, tmp_path, allowed,
                                                                                 expected):
    """The sandbox's ImagingStudy names its IID display (``Endpoint/sandbox-iid``, included in the search); the
    registration's own viewer is on another origin (127.0.0.1 instead of localhost)."""
    import html as html_module
    port = sandbox_base.rsplit(":", 1)[1]
    configured = f"http://127.0.0.1:{port}/IHEInvokeImageDisplay"
    doc = sandbox_registration(APP_ORIGIN, sandbox_base, fhir={"page_size": 100, "connect_timeout": 2,
                                                               "read_timeout": 10},
                               **({"viewer_origins": [sandbox_base]} if allowed else {}))
    doc["ehrs"][0]["scopes"] = ["online_access", "patient/Endpoint.rs"]
    doc["viewer"]["base_url"] = configured
    ehr = SandboxDriver(create_app(doc, secret_key="images", store_path=tmp_path / "l.sqlite3").test_client(),
                        sandbox_base)
    page = ehr.launch_to_list("pt-1001")
    launch = _launch_id(page.get_data(as_text=True))
    selected = ehr.client.get(f"/l/{launch}/?study=is-1001-ct").get_data(as_text=True)
    (src,) = re.findall(r'<iframe id="viewer-frame"[^>]* src="([^"]+)"', selected)
    src = html_module.unescape(src)
    base = f"{sandbox_base}/IHEInvokeImageDisplay?" if expected == "sandbox" else f"{configured}?"
    assert src.startswith(base) and "requestType=STUDY" in src, src
