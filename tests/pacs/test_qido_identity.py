"""The QIDO-RS list checks each match's patient identity itself, against the sandbox's DICOMweb and a real Orthanc.

Both servers filter on IssuerOfPatientID, so a mismatch only reaches the app from a PACS that does not support
matching on that key and ignores it (DICOM PS3.18 §8.3.4.1: an origin server ignores query keys it does not
support). Such a PACS is simulated by a pass-through in front of the real server that drops
``IssuerOfPatientID`` from the query (and records what it forwarded): the data and answers are the real server's.

* Orthanc holds, besides the sandbox's studies, one study of *another hospital's* patient with the same MRN
  (same PatientID, another IssuerOfPatientID): it must be dropped and counted.
* The sandbox's studies all carry its issuer; a registration mapping the MRN to another issuer sees every one
  dropped.
"""

from __future__ import annotations

import io
import re
from urllib.parse import urlencode

import pydicom
import pytest
import requests
from flask import Flask, Response, request

from sandbox.dataset import Dataset
from sandbox.demo_studies import DICOM_STUDIES
from sandbox.dicom_instances import instance_file_bytes
from sandbox.records import MRN_SYSTEM, PATIENT_ID_ISSUER_OID
from tests.dicomweb.test_sandbox_images import PT_1001_COUNT, _driver, _sandbox
from tests.pacs import PT_1001_UIDS, orthanc_pacs, require_orthanc, running_orthanc  # noqa: F401
from tests.support import live_server

OTHER_ISSUER = "1.2.826.0.1.3680043.10.999"  # another hospital's MRN namespace
IMPOSTOR_STUDY = "1.2.826.0.1.3680043.10.999.1"


def _issuer_ignoring_proxy(upstream: str, forwarded: list[list[tuple[str, str]]]):
    """A WSGI app forwarding GETs to ``upstream`` without ``IssuerOfPatientID`` (credentials passed through)."""
    proxy = Flask("issuer-ignoring-pacs")

    @proxy.get("/<path:rest>")
    def forward(rest: str):
        params = [(k, v) for k, v in request.args.items(multi=True) if k != "IssuerOfPatientID"]
        if rest == "studies":
            forwarded.append(params)
        headers = {h: request.headers[h] for h in ("Authorization", "Accept") if h in request.headers}
        query = urlencode(params, safe=",")
        answer = requests.get(f"{upstream}/{rest}" + (f"?{query}" if query else ""), headers=headers, timeout=10)
        return Response(answer.content, answer.status_code, content_type=answer.headers.get("Content-Type"))

    return proxy


def _impostor_bytes() -> bytes:
    """A CT instance of pt-1001's MRN (M0041001) issued by another hospital, in a study of its own."""
    dataset = Dataset()
    study_id, patient_id, *_ = DICOM_STUDIES[0]
    study, patient = dataset.study(study_id), dataset.patient(patient_id)
    series = study.series[0]
    instance = pydicom.dcmread(io.BytesIO(instance_file_bytes(patient, study, series, series.instances[0])))
    instance.StudyInstanceUID = IMPOSTOR_STUDY
    instance.SeriesInstanceUID = IMPOSTOR_STUDY + ".1"
    instance.SOPInstanceUID = instance.file_meta.MediaStorageSOPInstanceUID = IMPOSTOR_STUDY + ".1.1"
    instance.IssuerOfPatientID = OTHER_ISSUER
    instance.PatientName = "Other^Person"
    out = io.BytesIO()
    instance.save_as(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def pacs_with_impostor():
    """An Orthanc of this module's own (the session's shared one keeps exactly the sandbox's studies)."""
    require_orthanc()
    with running_orthanc() as pacs:
        response = pacs.session().post(pacs.url + "/instances", data=_impostor_bytes(),
                                       headers={"Content-Type": "application/dicom"}, timeout=30)
        response.raise_for_status()
        yield pacs


@pytest.fixture(scope="module")
def hidden_base():
    with _sandbox(HIDE_IMAGINGSTUDY=True) as port:
        yield f"http://localhost:{port}"


def _ids(html: str) -> set[str]:
    return set(re.findall(r'data-study-id="([^"]+)"', html))


def test_orthanc_itself_filters_the_other_hospitals_patient(pacs_with_impostor):
    query = [("PatientID", "M0041001"), ("IssuerOfPatientID", PATIENT_ID_ISSUER_OID)]
    found = pacs_with_impostor.session().get(pacs_with_impostor.dicomweb_url + "/studies", params=query,
                                             timeout=10).json()
    assert {item["0020000D"]["Value"][0] for item in found} == PT_1001_UIDS
    unfiltered = pacs_with_impostor.session().get(pacs_with_impostor.dicomweb_url + "/studies",
                                                  params=query[:1], timeout=10).json()
    assert {item["0020000D"]["Value"][0] for item in unfiltered} == PT_1001_UIDS | {IMPOSTOR_STUDY}


def test_a_pacs_ignoring_the_issuer_gives_orthancs_impostor_and_the_app_drops_it(pacs_with_impostor, hidden_base,
                                                                                 tmp_path, monkeypatch):
    forwarded: list = []
    monkeypatch.setenv("ORTHANC_AUTH", f"{pacs_with_impostor.username}:{pacs_with_impostor.password}")
    with live_server(lambda port: _issuer_ignoring_proxy(pacs_with_impostor.dicomweb_url, forwarded)) as port:
        ehr = _driver(hidden_base, tmp_path, dicomweb={
            "base_url": f"http://127.0.0.1:{port}", "basic_auth_env": "ORTHANC_AUTH",
            "patient_identifiers": [{"system": MRN_SYSTEM, "issuer_of_patient_id": PATIENT_ID_ISSUER_OID}]})
        page = ehr.launch_to_list("pt-1001")
        html = page.get_data(as_text=True)
    assert page.status_code == 200, html[:500]
    assert _ids(html) == PT_1001_UIDS  # the impostor (same MRN, other issuer) is not listed
    assert IMPOSTOR_STUDY not in html and "Other^Person" not in html
    assert "1 result(s) for another patient were ignored." in html
    (query,) = forwarded
    assert query[0] == ("PatientID", "M0041001") and not any(k == "IssuerOfPatientID" for k, _ in query)


def test_against_the_sandbox_a_mapping_to_another_issuer_drops_every_match(hidden_base, tmp_path):
    forwarded: list = []
    with live_server(lambda port: _issuer_ignoring_proxy(f"{hidden_base}/dicomweb", forwarded)) as port:
        ehr = _driver(hidden_base, tmp_path, dicomweb={
            "base_url": f"http://127.0.0.1:{port}", "send_smart_token": True,
            "patient_identifiers": [{"system": MRN_SYSTEM, "issuer_of_patient_id": OTHER_ISSUER}]})
        page = ehr.launch_to_list("pt-1001")
        html = page.get_data(as_text=True)
    assert page.status_code == 200, html[:500]
    assert _ids(html) == set()
    assert f"{PT_1001_COUNT} result(s) for another patient were ignored." in html
    assert len(forwarded) == 1


def test_against_the_sandbox_the_right_issuer_keeps_every_match(hidden_base, tmp_path):
    forwarded: list = []
    with live_server(lambda port: _issuer_ignoring_proxy(f"{hidden_base}/dicomweb", forwarded)) as port:
        ehr = _driver(hidden_base, tmp_path, dicomweb={
            "base_url": f"http://127.0.0.1:{port}", "send_smart_token": True,
            "patient_identifiers": [{"system": MRN_SYSTEM, "issuer_of_patient_id": PATIENT_ID_ISSUER_OID}]})
        html = ehr.launch_to_list("pt-1001").get_data(as_text=True)
    assert len(_ids(html)) == PT_1001_COUNT and "another patient" not in html


def test_an_ehr_whose_capabilitystatement_omits_imagingstudy_lists_from_orthanc(orthanc_pacs, tmp_path, monkeypatch):
    """The sandbox with ``UNDECLARED_IMAGINGSTUDY`` (its search answers an empty searchset; only ``/metadata``
    tells): the list comes from the real PACS."""
    monkeypatch.setenv("ORTHANC_AUTH", f"{orthanc_pacs.username}:{orthanc_pacs.password}")
    with _sandbox(UNDECLARED_IMAGINGSTUDY=True) as port:
        ehr = _driver(f"http://localhost:{port}", tmp_path, dicomweb={
            "base_url": orthanc_pacs.dicomweb_url, "basic_auth_env": "ORTHANC_AUTH",
            "patient_identifiers": [{"system": MRN_SYSTEM, "issuer_of_patient_id": PATIENT_ID_ISSUER_OID}]})
        html = ehr.launch_to_list("pt-1001").get_data(as_text=True)
    assert _ids(html) == PT_1001_UIDS
    assert "these studies come from the PACS at http://127.0.0.1:" in html
