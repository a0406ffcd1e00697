"""Each thumbnail fallback step and each auth mode through the thumbnail route, against the sandbox's DICOMweb
and a real Orthanc, with every DICOMweb request recorded (a pass-through in front of the real server; it can
refuse one kind of request, as a PACS without it would).

Steps: study ``/thumbnail`` (sandbox), series ``/thumbnail`` (sandbox with the study level refused),
``/rendered`` of the ImagingStudy's representative instance (Orthanc: no ``/thumbnail`` in plugin 1.7, the
instance from the sandbox's ImagingStudy, no QIDO-RS), ``/rendered`` of an instance found by QIDO-RS
(sandbox with both thumbnail levels refused and a QIDO-listed study). Auth: the SMART token to a base on the
origin of ``iss`` and to one the registration names with ``send_smart_token``; basic credentials from the
environment (Orthanc); none (nothing is sent).
"""

from __future__ import annotations

import io
from urllib.parse import urlencode

import pytest
import requests
from flask import Flask, Response, request
from PIL import Image

from app import create_app
from sandbox.records import MRN_SYSTEM, PATIENT_ID_ISSUER_OID
from tests.app.test_end_to_end import APP_ORIGIN, SandboxDriver
from tests.dicomweb.test_sandbox_images import _launch_id, _thumbnail_urls
from tests.pacs import orthanc_pacs  # noqa: F401  (fixture)
from tests.support import live_sandbox, live_server, sandbox_registration

CT = "is-1001-ct"  # sandbox ImagingStudy id of the CT (Study Instance UID below)
CT_UID = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"


def recording_proxy(upstream: str, seen: list[tuple[str, str, int]], refuse=lambda path: False):
    """GETs forwarded to ``upstream`` (``Authorization`` / ``Accept`` passed through); ``refuse(path)`` → 404
    without asking upstream. ``seen``: ``(path, authorization scheme, status)``."""
    proxy = Flask("recording-pacs")

    @proxy.get("/<path:rest>")
    def forward(rest: str):
        scheme = request.headers.get("Authorization", "none").split(" ")[0]
        if refuse(rest):
            seen.append((rest, scheme, 404))
            return Response('{"error": "not_found"}', 404, content_type="application/json")
        headers = {h: request.headers[h] for h in ("Authorization", "Accept") if h in request.headers}
        query = urlencode(list(request.args.items(multi=True)), safe=",")
        answer = requests.get(f"{upstream}/{rest}" + (f"?{query}" if query else ""), headers=headers, timeout=10)
        seen.append((rest, scheme, answer.status_code))
        return Response(answer.content, answer.status_code, content_type=answer.headers.get("Content-Type"))

    return proxy


@pytest.fixture(scope="module")
def hidden_base():
    with live_sandbox(HIDE_IMAGINGSTUDY=True) as port:
        yield f"http://localhost:{port}"


def _driver(base: str, tmp_path, dicomweb: dict | None = None) -> SandboxDriver:
    """No Endpoint scope: the studies carry no ``dicom-wado-rs`` Endpoint, so the registration's base is used."""
    extra = {"dicomweb": dicomweb} if dicomweb else {}
    doc = sandbox_registration(APP_ORIGIN, base, fhir={"page_size": 100, "connect_timeout": 2, "read_timeout": 10},
                               **extra)
    app = create_app(doc, secret_key="steps", store_path=tmp_path / "launches.sqlite3")
    return SandboxDriver(app.test_client(), base)


def _thumbnail(ehr: SandboxDriver, patient: str, study_id: str | None = None):
    page = ehr.launch_to_list(patient)
    html = page.get_data(as_text=True)
    page.close()  # keeps the list (as after a sent response)
    assert page.status_code == 200, html[:400]
    launch = _launch_id(html)
    if study_id is None:
        study_id = _thumbnail_urls(html)[0].split("/studies/")[1].split("/")[0]
    return ehr.client.get(f"/l/{launch}/studies/{study_id}/thumbnail")


def _pixels(response) -> tuple[int, int]:
    assert (response.status_code, response.headers["Content-Type"]) == (200, "image/jpeg")
    image = Image.open(io.BytesIO(response.data))
    low, high = image.convert("L").getextrema()
    assert high - low > 50  # not blank
    return image.size


def _kinds(seen) -> list[tuple[str, str, int]]:
    """``(step, auth scheme, status)`` with UIDs left out."""
    def kind(path: str) -> str:
        if path.endswith("/rendered"):
            return "rendered"
        if path.endswith("/thumbnail"):
            return "series-thumbnail" if "/series/" in path else "study-thumbnail"
        return "qido-instances" if path.endswith("/instances") else "qido-series" if path.endswith("/series") \
            else "qido-studies"
    return [(kind(p), s, status) for p, s, status in seen]


def test_study_thumbnail_from_the_sandbox_with_the_token_on_the_origin_of_iss(sandbox_base, tmp_path):
    ehr = _driver(sandbox_base, tmp_path, {"base_url": f"{sandbox_base}/dicomweb"})  # same origin as iss: bearer
    _pixels(_thumbnail(ehr, "pt-1001", CT))


def test_series_thumbnail_when_the_study_level_is_missing(sandbox_base, tmp_path):
    seen: list = []
    with live_server(lambda _: recording_proxy(f"{sandbox_base}/dicomweb", seen,
                                               refuse=lambda p: p.endswith("/thumbnail") and "/series/" not in p)) \
            as port:
        ehr = _driver(sandbox_base, tmp_path, {"base_url": f"http://127.0.0.1:{port}", "send_smart_token": True})
        _pixels(_thumbnail(ehr, "pt-1001", CT))
    assert _kinds(seen) == [("study-thumbnail", "Bearer", 404), ("series-thumbnail", "Bearer", 200)]


def test_rendered_instance_of_the_imaging_study_from_orthanc_with_basic_credentials(orthanc_pacs, sandbox_base,
                                                                                     tmp_path, monkeypatch):
    seen: list = []
    monkeypatch.setenv("ORTHANC_AUTH", f"{orthanc_pacs.username}:{orthanc_pacs.password}")
    with live_server(lambda _: recording_proxy(orthanc_pacs.dicomweb_url, seen)) as port:
        ehr = _driver(sandbox_base, tmp_path, {"base_url": f"http://127.0.0.1:{port}", "basic_auth_env": "ORTHANC_AUTH"})
        assert _pixels(_thumbnail(ehr, "pt-1001", CT)) == (128, 128)
    assert _kinds(seen) == [("study-thumbnail", "Basic", 404), ("series-thumbnail", "Basic", 404),
                            ("rendered", "Basic", 200)]  # series and instance from the ImagingStudy: no QIDO-RS
    assert seen[0][0] == f"studies/{CT_UID}/thumbnail"


def test_rendered_instance_found_by_qido_rs_in_the_sandbox(hidden_base, tmp_path):
    seen: list = []
    with live_server(lambda _: recording_proxy(f"{hidden_base}/dicomweb", seen,
                                               refuse=lambda p: p.endswith("/thumbnail"))) as port:
        ehr = _driver(hidden_base, tmp_path, {
            "base_url": f"http://127.0.0.1:{port}", "send_smart_token": True,
            "patient_identifiers": [{"system": MRN_SYSTEM, "issuer_of_patient_id": PATIENT_ID_ISSUER_OID}]})
        _pixels(_thumbnail(ehr, "pt-1001", CT_UID))  # a QIDO-RS list: study ids are Study Instance UIDs
    assert _kinds(seen) == [("qido-studies", "Bearer", 200), ("study-thumbnail", "Bearer", 404),
                            ("qido-series", "Bearer", 200), ("qido-instances", "Bearer", 200),
                            ("series-thumbnail", "Bearer", 404), ("rendered", "Bearer", 200)]


def test_without_credentials_for_the_pacs_nothing_is_sent(orthanc_pacs, sandbox_base, tmp_path):
    seen: list = []
    with live_server(lambda _: recording_proxy(orthanc_pacs.dicomweb_url, seen)) as port:
        ehr = _driver(sandbox_base, tmp_path, {"base_url": f"http://127.0.0.1:{port}"})  # another origin, no auth
        response = _thumbnail(ehr, "pt-1001", CT)
    assert response.status_code == 404
    assert seen == []  # no token for another origin, no basic credentials: the PACS is never asked
