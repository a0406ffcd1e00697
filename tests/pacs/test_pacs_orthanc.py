"""The Orthanc harness (tests/pacs.py): a real PACS answering DICOMweb with the sandbox's studies.

Talks to Orthanc with dicomweb-client (a requests.Session with basic auth) and plain requests.
"""

from __future__ import annotations

import io

from collections import Counter

import pytest
import requests
from dicomweb_client import DICOMwebClient
from PIL import Image

from sandbox.records import PATIENT_ID_ISSUER_OID
from tests.pacs import PT_1001_UIDS, orthanc_pacs  # noqa: F401  (fixture)

CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
NM_STUDY = "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457"


@pytest.fixture
def client(orthanc_pacs):
    return DICOMwebClient(url=orthanc_pacs.dicomweb_url, session=orthanc_pacs.session())


def _uids(results, tag="0020000D"):
    return {item[tag]["Value"][0] for item in results}


def test_harness_uploaded_the_sandbox_studies(orthanc_pacs):
    assert set(orthanc_pacs.studies) == PT_1001_UIDS | {"1.2.276.0.7230010.3.1.2.296485376.1.1521713414.1800996"}
    assert len(orthanc_pacs.instances) == 10
    assert orthanc_pacs.patient_ids == {"pt-1001": "M0041001", "pt-1002": "M0041002"}
    assert orthanc_pacs.version and orthanc_pacs.plugin_version
    assert orthanc_pacs.dicomweb_url == orthanc_pacs.url + "/dicom-web"
    assert orthanc_pacs.url.startswith("http://127.0.0.1:")


def test_qido_finds_the_studies_by_patient_id(client):
    assert _uids(client.search_for_studies(search_filters={"PatientID": "M0041001"})) == PT_1001_UIDS
    assert _uids(client.search_for_studies(search_filters={"PatientID": "M0041002"})) == {
        "1.2.276.0.7230010.3.1.2.296485376.1.1521713414.1800996"}
    assert client.search_for_studies(search_filters={"PatientID": "M0049999"}) == []


def test_qido_returns_the_patient_identity_mapping(client):
    (study,) = client.search_for_studies(search_filters={"StudyInstanceUID": CT_STUDY},
                                         fields=["IssuerOfPatientID"])
    assert study["00100020"]["Value"] == ["M0041001"]
    assert study["00100021"]["Value"] == [PATIENT_ID_ISSUER_OID]
    assert study["00100010"]["Value"] == [{"Alphabetic": "Whitfield^Margaret^Ann"}]


def test_qido_series_and_instances(client):
    (series,) = client.search_for_series(NM_STUDY)
    series_uid = series["0020000E"]["Value"][0]
    instances = client.search_for_instances(NM_STUDY, series_uid)
    assert _uids(instances, "00080018") == {"1.3.6.1.4.1.5962.1.1.8.1.3.20040826185059.5457",
                                            "1.3.6.1.4.1.5962.1.1.8.1.5.20040826185059.5457"}


def _ct_instance(orthanc_pacs):
    sop = next(sop for sop, (study, _) in orthanc_pacs.instances.items() if study == CT_STUDY)
    return CT_STUDY, orthanc_pacs.instances[sop][1], sop


@pytest.mark.parametrize("media_type,fmt", [("image/jpeg", "JPEG"), ("image/png", "PNG")])
def test_rendered_is_a_non_blank_image(orthanc_pacs, media_type, fmt):
    study, series, sop = _ct_instance(orthanc_pacs)
    # literal comma: Orthanc 1.10 / plugin 1.7 does not decode %2C in viewport
    url = f"{orthanc_pacs.dicomweb_url}/studies/{study}/series/{series}/instances/{sop}/rendered?viewport=64,32"
    response = orthanc_pacs.session().get(url, headers={"Accept": media_type}, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == media_type
    image = Image.open(io.BytesIO(response.content))
    assert image.format == fmt
    assert image.size == (64, 32)  # Orthanc stretches to the viewport (no aspect ratio kept)
    low, high = image.convert("L").getextrema()
    assert high - low > 100


def test_rendered_through_dicomweb_client(client, orthanc_pacs):
    study, series, sop = _ct_instance(orthanc_pacs)
    png = client.retrieve_instance_rendered(study, series, sop, media_types=("image/png",))
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.size) == ("PNG", (128, 128))
    assert image.getextrema()[1] > 0


def test_thumbnail_is_absent_in_this_orthanc(orthanc_pacs):
    study, series, sop = _ct_instance(orthanc_pacs)
    session = orthanc_pacs.session()
    for path in (f"studies/{study}/thumbnail", f"studies/{study}/series/{series}/thumbnail",
                 f"studies/{study}/series/{series}/instances/{sop}/thumbnail"):
        response = session.get(f"{orthanc_pacs.dicomweb_url}/{path}", headers={"Accept": "image/jpeg"}, timeout=10)
        assert response.status_code == 404, path  # plugin 1.7: "Unknown resource"


def test_orthanc_requires_the_credentials(orthanc_pacs):
    assert requests.get(orthanc_pacs.dicomweb_url + "/studies", timeout=10).status_code == 401
    assert requests.get(orthanc_pacs.dicomweb_url + "/studies", auth=("nobody", "wrong"), timeout=10).status_code == 401


def test_missing_orthanc_skips_loudly_but_fails_under_ci(monkeypatch):
    import tests.pacs as harness
    from tests import environment

    def missing():
        raise harness.PacsUnavailable("Orthanc binary not found (apt-get install orthanc orthanc-dicomweb)")

    monkeypatch.setattr(harness, "find_orthanc", missing)
    monkeypatch.setattr(environment, "MISSING", Counter())  # this test's skip is not a missing resource
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="Orthanc PACS not available: Orthanc binary not found"):
        harness.require_orthanc()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run this test"):
        harness.require_orthanc()
