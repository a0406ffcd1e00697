"""Data: studies built from pydicom's files keep their UIDs; every study with a UID shows real pixels."""

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from sandbox.dataset import Dataset
from sandbox.demo_studies import DICOM_STUDIES
from sandbox.records import IID_ENDPOINT_ID

EXPECTED_PT1001 = {
    "is-1001-ct": "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322",
    "is-1001-mr": "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457",
    "is-1001-us-rgb": "1.3.6.1.4.1.5962.1.2.13.20040826185059.5457",
    "is-1001-nm-bone": "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457",
    "is-1001-mr-abdomen": "1.2.124.113532.10.122.1.203.20051130.122937.2950157",
    "is-1001-us-cine": "1.2.840.114340.3.8251017118051.1.20160503.120850.2171",
    "is-1001-us-doppler": "1.3.46.670589.14.1000.210.4.199999.20110525182825.1.0",
    "is-1001-rtdose": "1.2.999.999.99.9.9999.8888",
    # the priors of the same modality and body site (synthesised UIDs, pixels of CT_small / MR_small)
    "is-1001-ct-prior": "2.25.255166576600891297957959878968165956061",
    "is-1001-mr-prior": "2.25.66774146559627541957639595202710652948",
}


@pytest.fixture(scope="module")
def dataset():
    return Dataset({"pt-2001": 40})


def test_fixed_patients_and_counts(dataset):
    counts = {p.id: len(p.studies) for p in dataset.patients()}
    assert counts == {"pt-1001": 10, "pt-1002": 1, "pt-1003": 250, "pt-1004": 0, "pt-1005": 10, "pt-1006": 2,
                      "pt-2001": 40}


def test_pt1001_study_uids(dataset):
    assert {s.id: s.study_instance_uid for s in dataset.patient("pt-1001").studies} == EXPECTED_PT1001


@pytest.mark.parametrize("study_id,patient_id,files", [(row[0], row[1], row[2]) for row in DICOM_STUDIES])
def test_uids_equal_those_in_the_dicom_files(dataset, study_id, patient_id, files):
    study = dataset.study(study_id)
    assert study.patient_id == patient_id
    resource = study.resource
    sop_uids = {i["uid"] for s in resource["series"] for i in s["instance"]}
    series_uids = {s["uid"] for s in resource["series"]}
    expected_sops, expected_series = set(), set()
    for name in files:
        ds = pydicom.dcmread(get_testdata_file(name), stop_before_pixels=True)
        assert {"system": "urn:dicom:uid", "value": f"urn:oid:{ds.StudyInstanceUID}"} in resource["identifier"]
        assert resource["modality"][0]["code"] == ds.Modality
        expected_sops.add(ds.SOPInstanceUID)
        expected_series.add(ds.SeriesInstanceUID)
        if ds.get("StudyDate"):
            assert resource["started"].startswith(f"{ds.StudyDate[:4]}-{ds.StudyDate[4:6]}-{ds.StudyDate[6:]}")
    assert sop_uids == expected_sops and series_uids == expected_series
    assert resource["numberOfInstances"] == len(expected_sops)


def test_nm_study_combines_two_files(dataset):
    (series,) = dataset.study("is-1001-nm-bone").series
    assert sorted(i.source_file for i in series.instances) == ["JPEG2000.dcm", "JPGExtended.dcm"]


def test_generated_history_shape(dataset):
    studies = dataset.patient("pt-1003").studies
    years = {s.started.year for s in studies}
    assert max(years) - min(years) >= 14
    assert {m for s in studies for m in s.modalities} >= {"CR", "CT", "MR", "US", "DX", "NM", "MG"}
    for study in studies:
        resource = study.resource
        uid = study.study_instance_uid
        assert uid.startswith("2.25.") and len(uid) <= 64
        assert resource["identifier"][0] == {"system": "urn:dicom:uid", "value": "urn:oid:" + uid}
        acsn = resource["identifier"][1]
        assert acsn["type"]["coding"][0] == {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}
        assert resource["numberOfSeries"] == len(resource["series"])
        assert resource["numberOfInstances"] == sum(len(s["instance"]) for s in resource["series"])
        assert resource["started"][-6] in "+-"
        assert resource["endpoint"] == [{"reference": f"Endpoint/{IID_ENDPOINT_ID}"},
                                        {"reference": "Endpoint/sandbox-dicomweb"}]
        for series in resource["series"]:
            assert series["modality"]["system"] == "http://dicom.nema.org/resources/ontology/DCM"
    assert len({s.study_instance_uid for s in studies}) == 250


def test_generation_is_deterministic():
    from sandbox.history import generate_history

    first = [s.resource for s in generate_history("pt-7777", 30)]
    second = [s.resource for s in generate_history("pt-7777", 30)]
    assert first == second


def test_pt1005_edge_cases(dataset):
    studies = {s.id: s for s in dataset.patient("pt-1005").studies}
    assert {s.status for s in studies.values()} == {"available", "cancelled", "entered-in-error", "registered"}
    no_uid = [s for s in studies.values() if s.study_instance_uid is None]
    assert len(no_uid) == 2
    assert all(not any(i.get("system") == "urn:dicom:uid" for i in s.resource.get("identifier", [])) for s in no_uid)
    mg = studies["is-1005-0007"].resource["identifier"]
    assert mg[0]["type"]["coding"][0]["code"] == "ACSN"
    assert mg[1]["system"] == "urn:dicom:uid" and mg[1]["value"].startswith("urn:oid:2.25.")
    bare = studies["is-1005-0008"].resource["identifier"][0]
    assert bare == {"system": "urn:dicom:uid", "value": studies["is-1005-0008"].study_instance_uid}


def test_pt1006_hl7_examples(dataset):
    example = dataset.study("example")
    assert example.patient_id == "pt-1006"
    assert example.resource["subject"] == {"reference": "Patient/pt-1006"}
    assert example.study_instance_uid == "2.16.124.113543.6003.1154777499.30246.19789.3503430045"
    xr = dataset.study("example-xr")
    assert xr.accession_number == "W12342398"
    assert xr.resource["series"][0]["instance"][1]["title"] == "LL VIEW"


def _studies_with_uid(dataset):
    return [s for p in dataset.patients() for s in p.studies if s.study_instance_uid]


def test_every_uid_study_has_pixels(dataset):
    for study in _studies_with_uid(dataset):
        assert study.series, study.id
        assert all(series.instances for series in study.series), study.id


def _png(client, url):
    response = client.get(url)
    assert response.status_code == 200 and response.content_type == "image/png"
    return Image.open(io.BytesIO(response.data))


@pytest.mark.parametrize("study_id", list(EXPECTED_PT1001) + ["is-1002-ct", "example", "example-xr"])
def test_iid_renders_real_pixels_for_demo_study(sandbox_client, sandbox_app, study_id):
    study = sandbox_app.extensions["sandbox"].dataset.study(study_id)
    page = sandbox_client.get("/IHEInvokeImageDisplay", query_string={
        "requestType": "STUDY", "studyUID": study.study_instance_uid, "viewerType": "IHE_BIR"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for series in study.series:
        for instance in series.instances:
            url = f"/IHEInvokeImageDisplay/instances/{instance.sop_instance_uid}/frames/1.png"
            assert url in html
            image = _png(sandbox_client, url)
            ds = pydicom.dcmread(get_testdata_file(instance.source_file), stop_before_pixels=True)
            assert image.size == (ds.Columns, ds.Rows)
            pixels = np.asarray(image)
            assert pixels.std() > 10
            assert len(np.unique(pixels)) > 20


def test_multiframe_frames_differ_and_bounds(sandbox_client, sandbox_app):
    study = sandbox_app.extensions["sandbox"].dataset.study("is-1001-us-cine")
    (instance,) = study.series[0].instances
    assert instance.frames == 30
    base = f"/IHEInvokeImageDisplay/instances/{instance.sop_instance_uid}/frames/"
    first = np.asarray(_png(sandbox_client, base + "1.png"))
    last = np.asarray(_png(sandbox_client, base + "30.png"))
    assert first.shape == (240, 320, 3)
    assert not np.array_equal(first, last)
    assert sandbox_client.get(base + "31.png").status_code == 404
    assert sandbox_client.get(base + "0.png").status_code == 404


def test_generated_study_pixels(sandbox_client, sandbox_app):
    study = sandbox_app.extensions["sandbox"].dataset.study("is-1003-0100")
    instance = study.series[0].instances[0]
    image = _png(sandbox_client, f"/IHEInvokeImageDisplay/instances/{instance.sop_instance_uid}/frames/1.png")
    assert np.asarray(image).std() > 10


def test_unknown_instance_404(sandbox_client):
    assert sandbox_client.get("/IHEInvokeImageDisplay/instances/1.2.3/frames/1.png").status_code == 404
