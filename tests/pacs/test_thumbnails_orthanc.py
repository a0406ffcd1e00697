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


IMPOSTOR_STUDY = "1.2.826.0.1.3680043.10.543.7.1"  # pt-1001's MRN under another assigning authority


def _upload_impostor(pacs, issuer: str | None) -> str:
    """An instance whose PatientID is pt-1001's MRN but whose IssuerOfPatientID is another authority's; its
    Orthanc study id."""
    import pydicom

    from sandbox.dataset import Dataset
    from sandbox.dicom_instances import instance_file_bytes
    dataset = Dataset()
    study = next(s for s in dataset.patient_studies("pt-1001") if s.study_instance_uid == CT_STUDY) \
        if hasattr(dataset, "patient_studies") else dataset.study("is-1001-ct")
    series = study.series[0]
    body = instance_file_bytes(dataset.patient("pt-1001"), study, series, series.instances[0])
    ds = pydicom.dcmread(io.BytesIO(body))
    ds.StudyInstanceUID = IMPOSTOR_STUDY
    ds.SeriesInstanceUID = IMPOSTOR_STUDY + ".1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = IMPOSTOR_STUDY + ".1.1"
    if issuer is None:
        del ds.IssuerOfPatientID
    else:
        ds.IssuerOfPatientID = issuer
    out = io.BytesIO()
    ds.save_as(out)
    response = pacs.session().post(pacs.url + "/instances", data=out.getvalue(),
                                   headers={"Content-Type": "application/dicom"}, timeout=30)
    response.raise_for_status()
    return response.json()["ParentStudy"]


@pytest.mark.parametrize("issuer", ["1.2.840.99.1", None])
def test_a_study_of_the_same_mrn_under_another_issuer_is_never_listed(orthanc_pacs, hidden_base, tmp_path,
                                                                      monkeypatch, issuer):
    """Orthanc applies IssuerOfPatientID itself (a study with another issuer, or none, is not matched), so the app's
    own check (tests/dicomweb/test_qido_list.py, mocked) finds nothing to drop here."""
    orthanc_study = _upload_impostor(orthanc_pacs, issuer)
    try:
        # Orthanc itself finds it by PatientID alone: the issuer is what tells the two patients apart
        everyone = DICOMwebClient(url=orthanc_pacs.dicomweb_url, session=orthanc_pacs.session()).search_for_studies(
            search_filters={"PatientID": "M0041001"})
        assert IMPOSTOR_STUDY in {s["0020000D"]["Value"][0] for s in everyone}
        monkeypatch.setenv("ORTHANC_AUTH", f"{orthanc_pacs.username}:{orthanc_pacs.password}")
        ehr = _driver(hidden_base, tmp_path, dicomweb={
            "base_url": orthanc_pacs.dicomweb_url, "basic_auth_env": "ORTHANC_AUTH",
            "patient_identifiers": [{"system": MRN_SYSTEM, "issuer_of_patient_id": PATIENT_ID_ISSUER_OID}]})
        html = ehr.launch_to_list("pt-1001").get_data(as_text=True)
        assert set(re.findall(r'data-study-id="([^"]+)"', html)) == PT_1001_UIDS
        assert IMPOSTOR_STUDY not in html
        assert "for another patient were ignored" not in html
    finally:
        orthanc_pacs.session().delete(f"{orthanc_pacs.url}/studies/{orthanc_study}", timeout=30).raise_for_status()



def _mapping(pacs):
    from app.config import DicomwebSettings, PatientIdentifierMapping
    return DicomwebSettings(base_url=pacs.dicomweb_url, basic_auth_env="ORTHANC_AUTH", patient_identifiers=(
        PatientIdentifierMapping(MRN_SYSTEM, PATIENT_ID_ISSUER_OID),))


def test_orthanc_wildcard_matches_patient_id_so_the_app_never_sends_a_wildcard(orthanc_pacs):
    """PatientID is LO: QIDO-RS matching takes ``*`` and ``?`` as wild cards (PS3.4 C.2.2.2.4) and ``\\`` separates
    values; an identifier holding one would widen the search to other patients."""
    from app.launches.qido_list import patient_key
    response = orthanc_pacs.session().get(f"{orthanc_pacs.dicomweb_url}/studies?PatientID=M004100*",
                                          headers={"Accept": "application/dicom+json"}, timeout=10)
    assert {s["00100020"]["Value"][0] for s in response.json()} == {"M0041001", "M0041002"}
    for value in ("M004100*", "M00410?1", "M0041001\\M0041002", "M0041001\n"):
        assert patient_key({"identifier": [{"system": MRN_SYSTEM, "value": value}]}, _mapping(orthanc_pacs)) is None
    assert patient_key({"identifier": [{"system": MRN_SYSTEM, "value": "M0041001"}]}, _mapping(orthanc_pacs)) == \
        ("M0041001", PATIENT_ID_ISSUER_OID)


def test_orthanc_matches_patient_id_regardless_of_case_and_the_app_drops_what_is_not_the_patients(
        orthanc_pacs, monkeypatch):
    """Orthanc 1.10 answers ``PatientID=m0041001`` with M0041001's studies: a PACS returning another patient's
    matches, for real. The app keeps only exact PatientID and IssuerOfPatientID matches."""
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from app.fhir.study_list import StudyListLimits
    from app.launches.images import LaunchImages
    from app.launches.qido_list import fetch_qido_study_list

    class Discovery:
        def discover(self, iss):
            raise ValueError("no discovery here")

    class PatientOnly:
        fhir_base_url = "https://ehr.example.org/fhir"

        def read(self, resource_type, resource_id):
            return {"resourceType": "Patient", "id": resource_id,
                    "identifier": [{"system": MRN_SYSTEM, "value": "m0041001"}]}

    monkeypatch.setenv("ORTHANC_AUTH", f"{orthanc_pacs.username}:{orthanc_pacs.password}")
    context = SimpleNamespace(id="L1", state=SimpleNamespace(iss=PatientOnly.fhir_base_url, patient="pt-x"),
                              ehr=SimpleNamespace(dicomweb=_mapping(orthanc_pacs)))
    images = LaunchImages(Discovery(), OutboundClient(2, 10, limits=DICOMWEB_LIMITS))
    with ThreadPoolExecutor(2) as executor:
        result = fetch_qido_study_list(context, PatientOnly(), images, StudyListLimits(100, 1), executor,
                                       want_banner=False)
    assert (result.studies, result.excluded, result.incomplete) == ([], len(PT_1001_UIDS), None)
