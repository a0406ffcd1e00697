"""IHE RAD-106 request URLs built exactly."""

from __future__ import annotations

from datetime import datetime

import pytest

from app.display.iid import DisplayOptions, IIDRequestError, patient_id_cx, patient_request, study_request
from tests.support import UID_A, UID_B, VIEWER


def test_single_study_exact_url():
    assert study_request(VIEWER, study_uids=[f"urn:oid:{UID_A}"], options=DisplayOptions("IHE_BIR")) == (
        f"{VIEWER}?requestType=STUDY&studyUID={UID_A}&viewerType=IHE_BIR")


def test_comparison_lists_uids_once_each_comma_encoded():
    url = study_request(VIEWER, study_uids=[UID_A, UID_B, UID_A],
                        options=DisplayOptions("IHE_BIR", diagnostic_quality=True, key_images_only=False))
    assert url == (f"{VIEWER}?requestType=STUDY&studyUID={UID_A}%2C{UID_B}&viewerType=IHE_BIR"
                   "&diagnosticQuality=true&keyImagesOnly=false")


def test_accession_numbers_are_encoded():
    assert study_request(VIEWER, accession_numbers=["A 1&2"]) == f"{VIEWER}?requestType=STUDY&accessionNumber=A+1%262"


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one of studyUID or accessionNumber"),
    ({"study_uids": [UID_A], "accession_numbers": ["A1"]}, "exactly one of studyUID or accessionNumber"),
    ({"study_uids": ["1.2.x"]}, "studyUID: not a valid DICOM UID"),
    ({"accession_numbers": ["A,B"]}, "accessionNumber: empty or contains a comma"),
])
def test_study_request_errors(kwargs, message):
    with pytest.raises(IIDRequestError, match=message):
        study_request(VIEWER, **kwargs)


def test_base_url_with_existing_query_keeps_it():
    assert study_request("https://pacs.example.org/IHEInvokeImageDisplay?site=2", study_uids=[UID_A]) == (
        f"https://pacs.example.org/IHEInvokeImageDisplay?site=2&requestType=STUDY&studyUID={UID_A}")


def test_patient_request_exact_url():
    url = patient_request(VIEWER, patient_id="pt-1001", assigning_authority_oid="1.2.3",
                          lower_date_time=datetime(2020, 1, 2, 3, 4, 5), upper_date_time=datetime(2024, 12, 31),
                          most_recent_results=3, modalities_in_study=["CT", "MR"],
                          options=DisplayOptions("IHE_BIR"))
    assert url == (f"{VIEWER}?requestType=PATIENT&patientID=pt-1001%5E%5E%5E%261.2.3%26ISO"
                   "&lowerDateTime=20200102030405&upperDateTime=20241231000000&mostRecentResults=3"
                   "&modalitiesInStudy=CT%2CMR&viewerType=IHE_BIR")


@pytest.mark.parametrize("kwargs, message", [
    ({"most_recent_results": 0}, "mostRecentResults"),
    ({"modalities_in_study": ["ct"]}, "modalitiesInStudy"),
    ({"lower_date_time": datetime(2024, 1, 2), "upper_date_time": datetime(2024, 1, 1)}, "lowerDateTime"),
])
def test_patient_request_errors(kwargs, message):
    with pytest.raises(IIDRequestError, match=message):
        patient_request(VIEWER, patient_id="p", assigning_authority_oid="1.2.3", **kwargs)


def test_cx_refuses_delimiters_and_bad_issuer():
    assert patient_id_cx("pt-1", "1.2.3") == "pt-1^^^&1.2.3&ISO"
    with pytest.raises(IIDRequestError):
        patient_id_cx("pt^1", "1.2.3")
    with pytest.raises(IIDRequestError):
        patient_id_cx("pt-1", "hospital")
