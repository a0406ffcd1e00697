"""Thumbnails and the QIDO-RS list from a real Orthanc (tests/pacs.py) with HTTP basic authentication.

Orthanc 1.10 / DICOMweb plugin 1.7 has no ``/thumbnail``, so the chain ends at ``/rendered``. The app is launched
from the live sandbox EHR with ImagingStudy hidden, so its list comes from Orthanc's QIDO-RS.
"""

from __future__ import annotations

import io
import re

import pytest
from dicomweb_client import DICOMwebClient
from PIL import Image

from app.dicomweb.access import BASIC, Access
from app.dicomweb.service import DICOMWEB_LIMITS, DicomwebService
from app.dicomweb.thumbnails import StudyRef, fetch_thumbnail
from app.outbound import OutboundClient
from sandbox.records import MRN_SYSTEM, PATIENT_ID_ISSUER_OID
from tests.dicomweb.test_sandbox_images import _driver, _sandbox, _thumbnail_urls
from tests.pacs import PT_1001_UIDS, orthanc_pacs  # noqa: F401  (fixture)

CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"


def _service(pacs) -> DicomwebService:
    return DicomwebService(pacs.dicomweb_url, OutboundClient(2, 10, limits=DICOMWEB_LIMITS),
                           Access(BASIC, pacs.auth))


def test_the_chain_falls_back_to_rendered_with_the_qido_instance(orthanc_pacs):
    thumbnail = fetch_thumbnail(_service(orthanc_pacs), StudyRef(CT_STUDY))
    assert thumbnail.source == "rendered"
    (sop,) = [sop for sop, (study, _) in orthanc_pacs.instances.items() if study == CT_STUDY]
    image = Image.open(io.BytesIO(thumbnail.content))
    assert (image.format, image.size) == ("JPEG", (128, 128))  # the 128 x 128 CT, viewport from Rows/Columns
    low, high = image.convert("L").getextrema()
    assert high - low > 100
    # the same pixels dicomweb-client gets from Orthanc, independently
    client = DICOMwebClient(url=orthanc_pacs.dicomweb_url, session=orthanc_pacs.session())
    series = orthanc_pacs.instances[sop][1]
    reference = Image.open(io.BytesIO(client.retrieve_instance_rendered(CT_STUDY, series, sop,
                                                                         media_types=("image/jpeg",))))
    assert reference.size == (128, 128)


def test_wrong_credentials_end_the_chain_with_401(orthanc_pacs):
    from app.dicomweb.errors import DicomwebHttpError
    service = DicomwebService(orthanc_pacs.dicomweb_url, OutboundClient(2, 10, limits=DICOMWEB_LIMITS),
                              Access(BASIC, (orthanc_pacs.username, "wrong")))
    with pytest.raises(DicomwebHttpError) as caught:
        fetch_thumbnail(service, StudyRef(CT_STUDY))
    assert (caught.value.status, caught.value.operation) == (401, "study-thumbnail")


@pytest.fixture(scope="module")
def hidden_base():
    with _sandbox(HIDE_IMAGINGSTUDY=True) as port:
        yield f"http://localhost:{port}"


def test_the_list_and_its_thumbnails_come_from_orthanc(orthanc_pacs, hidden_base, tmp_path, monkeypatch):
    monkeypatch.setenv("ORTHANC_AUTH", f"{orthanc_pacs.username}:{orthanc_pacs.password}")
    ehr = _driver(hidden_base, tmp_path, dicomweb={
        "base_url": orthanc_pacs.dicomweb_url, "basic_auth_env": "ORTHANC_AUTH",
        "patient_identifiers": [{"system": MRN_SYSTEM, "issuer_of_patient_id": PATIENT_ID_ISSUER_OID}]})
    page = ehr.launch_to_list("pt-1001")
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html[:500]
    assert set(re.findall(r'data-study-id="([^"]+)"', html)) == PT_1001_UIDS
    assert "these studies come from the PACS at http://127.0.0.1:" in html
    url = next(u for u in _thumbnail_urls(html) if CT_STUDY in u)
    response = ehr.client.get(url)
    assert (response.status_code, response.headers["Content-Type"]) == (200, "image/jpeg")
    assert response.headers["Cache-Control"] == "private, max-age=300"
