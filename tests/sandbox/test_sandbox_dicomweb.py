"""Sandbox DICOMweb service, Endpoint resources, _include, associated_endpoints, HIDE_IMAGINGSTUDY."""

from __future__ import annotations

import io

import pytest
import requests
from dicomweb_client import DICOMwebClient
from PIL import Image

from sandbox import create_app
from sandbox.records import PATIENT_ID_ISSUER_OID
from tests.support import live_server

CT = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
CT_SERIES = "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322"
NM = "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457"
NM_SERIES = "1.3.6.1.4.1.5962.1.3.8.1.20040826185059.5457"
NM_INSTANCES = ["1.3.6.1.4.1.5962.1.1.8.1.3.20040826185059.5457", "1.3.6.1.4.1.5962.1.1.8.1.5.20040826185059.5457"]
US_RGB = "1.3.6.1.4.1.5962.1.2.13.20040826185059.5457"
CINE = "1.2.840.114340.3.8251017118051.1.20160503.120850.2171"
PT_1001_UIDS = {
    CT, "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457", US_RGB, NM,
    "1.2.124.113532.10.122.1.203.20051130.122937.2950157", CINE,
    "1.3.46.670589.14.1000.210.4.199999.20110525182825.1.0", "1.2.999.999.99.9.9999.8888",
    "2.25.255166576600891297957959878968165956061", "2.25.66774146559627541957639595202710652948",
}
PT_1002_CT = "1.2.276.0.7230010.3.1.2.296485376.1.1521713414.1800996"
BASE = "http://localhost:8800/dicomweb"
CONNECTION_TYPES = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"


@pytest.fixture
def token(smart):
    return smart.ehr_token("pt-1001")["access_token"]


def get(smart, path, token=None, **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return smart.client.get("/dicomweb/" + path, headers=headers)


def values(item, tag):
    return item.get(tag, {}).get("Value")


def _ct_instance(smart, token):
    (instance,) = get(smart, f"studies/{CT}/series/{CT_SERIES}/instances", token).get_json()
    return values(instance, "00080018")[0]


# ----------------------------------------------------------------- QIDO-RS
def test_search_studies_of_the_launch_patient(smart, token):
    response = get(smart, "studies?PatientID=M0041001", token)
    assert response.status_code == 200
    assert response.content_type == "application/dicom+json"
    studies = response.get_json()
    assert {values(s, "0020000D")[0] for s in studies} == PT_1001_UIDS
    ct = next(s for s in studies if values(s, "0020000D") == [CT])
    assert values(ct, "00100020") == ["M0041001"]
    assert values(ct, "00100010") == [{"Alphabetic": "Whitfield^Margaret^Ann"}]
    assert values(ct, "00080061") == ["CT"]
    assert values(ct, "00201206") == [1] and values(ct, "00201208") == [1]
    assert values(ct, "00081190") == [f"{BASE}/studies/{CT}"]
    assert "00081030" not in ct and "00100021" not in ct  # optional: only with includefield
    nm = next(s for s in studies if values(s, "0020000D") == [NM])
    assert values(nm, "00201206") == [1] and values(nm, "00201208") == [2]


def test_search_without_patient_id_is_the_compartment(smart, token):
    studies = get(smart, "studies", token).get_json()
    assert {values(s, "0020000D")[0] for s in studies} == PT_1001_UIDS
    dates = [values(s, "00080020")[0] for s in studies]
    assert dates == sorted(dates, reverse=True)


def test_includefield_and_issuer(smart, token):
    (study,) = get(smart, f"studies?StudyInstanceUID={CT}&includefield=IssuerOfPatientID,00081030", token).get_json()
    assert values(study, "00100021") == [PATIENT_ID_ISSUER_OID]
    assert values(study, "00081030") == ["CT Chest without contrast"]
    assert get(smart, f"studies?IssuerOfPatientID={PATIENT_ID_ISSUER_OID}", token).get_json().__len__() == 10
    assert get(smart, "studies?IssuerOfPatientID=1.2.3.4", token).get_json() == []
    (everything,) = get(smart, f"studies?StudyInstanceUID={CT}&includefield=all", token).get_json()
    assert {"00081030", "00100021"} <= set(everything)


def test_matching_filters(smart, token):
    assert [values(s, "0020000D")[0] for s in get(smart, "studies?AccessionNumber=A1001004", token).get_json()] == [NM]
    modalities = get(smart, "studies?ModalitiesInStudy=NM", token).get_json()
    assert [values(s, "0020000D")[0] for s in modalities] == [NM]
    assert len(get(smart, "studies?ModalitiesInStudy=US", token).get_json()) == 3
    two = get(smart, f"studies?StudyInstanceUID={CT},{NM}", token).get_json()
    assert {values(s, "0020000D")[0] for s in two} == {CT, NM}
    assert [values(s, "0020000D")[0] for s in get(smart, "studies?StudyDate=20040119", token).get_json()] == [CT]
    assert len(get(smart, "studies?limit=3&offset=1", token).get_json()) == 3


@pytest.mark.parametrize("query", ["studies?PatientName=X", "studies?limit=-1", "studies?includefield=NoSuchKeyword",
                                   "studies?StudyDate=2004", "studies?PatientID=a&PatientID=b"])
def test_unsupported_query_400(smart, token, query):
    response = get(smart, query, token)
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_request"


def test_series_and_instances(smart, token):
    (series,) = get(smart, f"studies/{NM}/series", token).get_json()
    assert values(series, "0020000E") == [NM_SERIES]
    assert values(series, "00080060") == ["NM"]
    assert values(series, "00201209") == [2]
    response = get(smart, f"studies/{NM}/series/{NM_SERIES}/instances", token)
    assert response.content_type == "application/dicom+json"
    instances = response.get_json()
    assert [values(i, "00080018")[0] for i in instances] == NM_INSTANCES
    assert [values(i, "00200013")[0] for i in instances] == [3, 5]
    assert values(instances[0], "00280010") == [1024] and values(instances[0], "00280011") == [256]
    (cine,) = get(smart, f"studies/{CINE}/instances", token).get_json()
    assert values(cine, "00280008") == [30] and "0020000E" in cine
    assert get(smart, f"studies/{NM}/series/{NM_SERIES}/instances?SOPInstanceUID={NM_INSTANCES[1]}",
               token).get_json()[0]["00080018"]["Value"] == [NM_INSTANCES[1]]


def test_unknown_uids_404(smart, token):
    assert get(smart, "studies/1.2.3.4/series", token).status_code == 404
    assert get(smart, f"studies/{NM}/series/1.2.3/instances", token).status_code == 404
    assert get(smart, f"studies/{NM}/series/{NM_SERIES}/instances/1.2.3/metadata", token).status_code == 404


# ----------------------------------------------------------------- auth
def test_no_token_401(smart):
    for path in ("studies", f"studies/{CT}/metadata", f"studies/{CT}/thumbnail"):
        response = get(smart, path)
        assert response.status_code == 401, path
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert get(smart, "studies", "made-up").status_code == 401


def test_other_patients_study_403(smart):
    token = smart.ehr_token("pt-1002")["access_token"]
    assert get(smart, f"studies/{PT_1002_CT}/series", token).status_code == 200
    sop = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    for path in (f"studies/{CT}/series", f"studies/{CT}/metadata", f"studies/{CT}/thumbnail",
                 f"studies/{CT}/series/{CT_SERIES}/instances/{sop}/rendered",
                 "studies?PatientID=M0041001", f"studies?StudyInstanceUID={CT}"):
        response = get(smart, path, token)
        assert response.status_code == 403, path
        assert response.get_json()["error"] == "forbidden"
    assert [values(s, "0020000D")[0] for s in get(smart, "studies", token).get_json()] == [PT_1002_CT]


def test_scope_must_cover_imagingstudy(smart):
    narrow = smart.ehr_token("pt-1001", faults={"narrow_scope": True})["access_token"]
    response = get(smart, "studies", narrow)
    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"
    read_only = smart.ehr_token("pt-1001", scope="launch patient/ImagingStudy.r")["access_token"]
    assert get(smart, "studies", read_only).status_code == 403
    assert get(smart, f"studies/{CT}/metadata", read_only).status_code == 200


def test_user_scope_sees_every_patient(smart):
    token = smart.ehr_token("pt-1001", scope="launch user/ImagingStudy.rs")["access_token"]
    (study,) = get(smart, "studies?PatientID=M0041002", token).get_json()
    assert values(study, "0020000D") == [PT_1002_CT]


# ----------------------------------------------------------------- WADO-RS metadata
def test_study_metadata(smart, token):
    response = get(smart, f"studies/{NM}/metadata", token)
    assert response.status_code == 200
    assert response.content_type == "application/dicom+json"
    items = response.get_json()
    assert [values(i, "00080018")[0] for i in items] == NM_INSTANCES
    for item in items:
        assert values(item, "0020000D") == [NM] and values(item, "0020000E") == [NM_SERIES]
        assert values(item, "00100020") == ["M0041001"]
        assert values(item, "00100021") == [PATIENT_ID_ISSUER_OID]
        assert values(item, "00100030") == ["19580314"] and values(item, "00100040") == ["F"]
        assert values(item, "00080050") == ["A1001004"]
        assert "7FE00010" not in item  # no pixel data in metadata
        assert values(item, "00280010") == [1024]
    series_items = get(smart, f"studies/{NM}/series/{NM_SERIES}/metadata", token).get_json()
    assert len(series_items) == 2
    (one,) = get(smart, f"studies/{NM}/series/{NM_SERIES}/instances/{NM_INSTANCES[1]}/metadata", token).get_json()
    assert values(one, "00200013") == [5]


def test_generated_study_metadata_carries_its_own_uids(smart):
    token = smart.ehr_token("pt-1003")["access_token"]
    study = smart.client.application.extensions["sandbox"].dataset.study("is-1003-0001")
    items = get(smart, f"studies/{study.study_instance_uid}/metadata", token).get_json()
    expected = [i.sop_instance_uid for s in sorted(study.series, key=lambda s: s.number)
                for i in sorted(s.instances, key=lambda i: i.number)]
    assert [values(i, "00080018")[0] for i in items] == expected
    assert {values(i, "0020000D")[0] for i in items} == {study.study_instance_uid}
    assert {values(i, "00100020")[0] for i in items} == {"M0041003"}


def test_json_only(smart, token):
    response = get(smart, "studies", token, Accept='multipart/related; type="application/dicom+xml"')
    assert response.status_code == 406
    assert get(smart, "studies", token, Accept="application/json").status_code == 200


def test_cancelled_and_uidless_studies_are_not_in_the_pacs(smart):
    token = smart.ehr_token("pt-1005")["access_token"]
    studies = get(smart, "studies", token).get_json()
    dataset = smart.client.application.extensions["sandbox"].dataset
    statuses = {dataset.study_by_uid(values(s, "0020000D")[0]).status for s in studies}
    assert len(studies) == 6 and statuses == {"available"}


# ----------------------------------------------------------------- rendered, thumbnail
def _image(response):
    image = Image.open(io.BytesIO(response.data))
    image.load()
    return image


@pytest.mark.parametrize("accept,content_type,fmt", [
    (None, "image/jpeg", "JPEG"), ("image/jpeg", "image/jpeg", "JPEG"), ("image/png", "image/png", "PNG"),
    ("image/*", "image/jpeg", "JPEG"), ("image/gif, image/png;q=0.5", "image/png", "PNG"),
])
def test_rendered_media_types(smart, token, accept, content_type, fmt):
    sop = _ct_instance(smart, token)
    headers = {"Accept": accept} if accept else {}
    response = get(smart, f"studies/{CT}/series/{CT_SERIES}/instances/{sop}/rendered", token, **headers)
    assert response.status_code == 200
    assert response.content_type == content_type
    image = _image(response)
    assert image.format == fmt and image.size == (128, 128)
    low, high = image.getextrema()
    assert high - low > 100


def test_rendered_406_for_other_types(smart, token):
    sop = _ct_instance(smart, token)
    response = get(smart, f"studies/{CT}/series/{CT_SERIES}/instances/{sop}/rendered", token, Accept="image/gif")
    assert response.status_code == 406


@pytest.mark.parametrize("viewport,size", [("64,32", (32, 32)), ("256,512", (256, 256)), ("100,100", (100, 100))])
def test_rendered_viewport_fits_keeping_aspect(smart, token, viewport, size):
    sop = _ct_instance(smart, token)
    response = get(smart, f"studies/{CT}/series/{CT_SERIES}/instances/{sop}/rendered?viewport={viewport}", token,
                   Accept="image/png")
    assert _image(response).size == size


def test_rendered_viewport_non_square(smart, token):
    (instance,) = get(smart, f"studies/{US_RGB}/instances", token).get_json()
    series = values(instance, "0020000E")[0]
    sop = values(instance, "00080018")[0]
    response = get(smart, f"studies/{US_RGB}/series/{series}/instances/{sop}/rendered?viewport=160,160", token)
    image = _image(response)
    assert image.size == (160, 120) and image.mode == "RGB"  # 320 x 240 source


@pytest.mark.parametrize("query", ["viewport=0,10", "viewport=10", "viewport=1,1,0,0,5,5", "quality=0", "window=40,400"])
def test_rendered_bad_parameters_400(smart, token, query):
    sop = _ct_instance(smart, token)
    assert get(smart, f"studies/{CT}/series/{CT_SERIES}/instances/{sop}/rendered?{query}", token).status_code == 400


def test_rendered_frames(smart, token):
    (instance,) = get(smart, f"studies/{CINE}/instances", token).get_json()
    series, sop = values(instance, "0020000E")[0], values(instance, "00080018")[0]
    path = f"studies/{CINE}/series/{series}/instances/{sop}/frames"
    first = get(smart, f"{path}/1/rendered", token, Accept="image/png")
    last = get(smart, f"{path}/30/rendered", token, Accept="image/png")
    assert first.status_code == last.status_code == 200
    assert first.data != last.data
    assert get(smart, f"{path}/31/rendered", token).status_code == 404
    assert get(smart, f"{path}/1,2/rendered", token).status_code == 400


def test_thumbnails_at_every_level(smart, token):
    sop = _ct_instance(smart, token)
    for path in (f"studies/{CT}/thumbnail", f"studies/{CT}/series/{CT_SERIES}/thumbnail",
                 f"studies/{CT}/series/{CT_SERIES}/instances/{sop}/thumbnail",
                 f"studies/{CT}/series/{CT_SERIES}/instances/{sop}/frames/1/thumbnail"):
        response = get(smart, path, token)
        assert response.status_code == 200, path
        assert response.content_type == "image/jpeg"
        assert _image(response).size == (128, 128)
    nm = get(smart, f"studies/{NM}/thumbnail?viewport=64,64", token, Accept="image/png")
    assert nm.content_type == "image/png" and _image(nm).size == (16, 64)  # 256 x 1024 source


def test_unsupported_resources(smart, token):
    assert get(smart, f"studies/{CT}", token).status_code == 404  # retrieve DICOM is not offered
    assert smart.client.post("/dicomweb/studies", headers={"Authorization": f"Bearer {token}"}).status_code == 405


# ----------------------------------------------------------------- FHIR: Endpoint, _include, discovery
def test_endpoint_resources(smart, token):
    study = smart.fhir("ImagingStudy/is-1001-ct", token).get_json()
    assert study["endpoint"] == [{"reference": "Endpoint/sandbox-iid"}, {"reference": "Endpoint/sandbox-dicomweb"}]
    iid = smart.fhir("Endpoint/sandbox-iid", token).get_json()
    assert iid["connectionType"] == {"system": CONNECTION_TYPES, "code": "ihe-iid"}
    assert iid["address"] == "http://localhost:8800/IHEInvokeImageDisplay"
    response = smart.fhir("Endpoint/sandbox-dicomweb", token)
    assert response.status_code == 200
    dicomweb = response.get_json()
    assert dicomweb["resourceType"] == "Endpoint" and dicomweb["status"] == "active"
    assert dicomweb["connectionType"] == {"system": CONNECTION_TYPES, "code": "dicom-wado-rs"}
    assert dicomweb["address"] == BASE
    assert dicomweb["payloadType"]


def test_endpoint_only_for_studies_in_the_pacs(smart):
    token = smart.ehr_token("pt-1005")["access_token"]
    endpoints = {
        e["resource"]["id"]: e["resource"].get("endpoint")
        for e in smart.fhir("ImagingStudy?patient=pt-1005", token).get_json()["entry"]
    }
    assert endpoints["is-1005-0004"] == [{"reference": "Endpoint/sandbox-iid"}]  # cancelled
    assert endpoints["is-1005-0009"] is None  # no UID, no series
    assert endpoints["is-1005-0001"][-1] == {"reference": "Endpoint/sandbox-dicomweb"}


def test_include_endpoints(smart, token):
    plain = smart.fhir("ImagingStudy?patient=pt-1001", token).get_json()
    bundle = smart.fhir("ImagingStudy?patient=pt-1001&_include=ImagingStudy:endpoint", token).get_json()
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    includes = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert [e["resource"]["id"] for e in matches] == [e["resource"]["id"] for e in plain["entry"]]
    assert len(plain["entry"]) == 10 and bundle["total"] == plain["total"] == 10
    assert len(includes) == 2
    assert [e["resource"]["id"] for e in includes] == ["sandbox-iid", "sandbox-dicomweb"]
    assert includes[1]["fullUrl"] == "http://localhost:8800/fhir/Endpoint/sandbox-dicomweb"
    assert all("_include=ImagingStudy%3Aendpoint" in link["url"] for link in bundle["link"])


def test_include_hl7_example_endpoint_and_paging(smart):
    token = smart.ehr_token("pt-1006")["access_token"]
    bundle = smart.fhir("ImagingStudy?patient=pt-1006&_include=ImagingStudy:endpoint", token).get_json()
    assert [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"] == ["example-wadors"]
    token = smart.ehr_token("pt-1003")["access_token"]
    page = smart.fhir("ImagingStudy?patient=pt-1003&_count=5&_include=ImagingStudy:endpoint", token).get_json()
    assert len(page["entry"]) == 7 and page["total"] == 250


def test_include_needs_endpoint_scope_and_a_known_value(smart):
    token = smart.ehr_token("pt-1001", scope="launch patient/ImagingStudy.rs")["access_token"]
    bundle = smart.fhir("ImagingStudy?patient=pt-1001&_include=ImagingStudy:endpoint", token).get_json()
    assert {e["search"]["mode"] for e in bundle["entry"]} == {"match"}
    response = smart.fhir("ImagingStudy?patient=pt-1001&_include=ImagingStudy:subject", token)
    assert response.status_code == 400


def test_associated_endpoints_in_smart_configuration(smart):
    body = smart.client.get("/fhir/.well-known/smart-configuration").get_json()
    assert body["associated_endpoints"] == [{"url": BASE, "capabilities": ["smart-imaging-access"]}]


# ----------------------------------------------------------------- HIDE_IMAGINGSTUDY
@pytest.fixture
def hidden(smart):
    return type(smart)(create_app({"TESTING": True, "HIDE_IMAGINGSTUDY": True}).test_client())


def test_hide_imagingstudy(hidden):
    token = hidden.ehr_token("pt-1001")["access_token"]
    for path in ("ImagingStudy?patient=pt-1001", "ImagingStudy/is-1001-ct"):
        response = hidden.fhir(path, token)
        assert response.status_code == 404, path
        outcome = response.get_json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "not-supported"
    types = [r["type"] for r in hidden.fhir("metadata").get_json()["rest"][0]["resource"]]
    assert types == ["Patient", "Endpoint", "DiagnosticReport", "Practitioner", "Encounter"]
    assert hidden.fhir("Patient/pt-1001", token).status_code == 200
    studies = get(hidden, "studies?PatientID=M0041001", token).get_json()
    assert {values(s, "0020000D")[0] for s in studies} == PT_1001_UIDS


def test_imagingstudy_listed_by_default(smart):
    types = [r["type"] for r in smart.fhir("metadata").get_json()["rest"][0]["resource"]]
    assert types == ["Patient", "ImagingStudy", "Endpoint", "DiagnosticReport", "Practitioner", "Encounter"]


@pytest.mark.parametrize("raw,expected", [("1", True), ("true", True), ("0", False), ("", False)])
def test_hide_option_from_env_and_cli(monkeypatch, raw, expected):
    from sandbox.__main__ import build_parser
    from sandbox.config import load_config

    assert load_config(environ={"SANDBOX_HIDE_IMAGINGSTUDY": raw})["HIDE_IMAGINGSTUDY"] is expected
    assert build_parser().parse_args(["--hide-imagingstudy"]).hide_imagingstudy is True
    assert build_parser().parse_args([]).hide_imagingstudy is None


# ----------------------------------------------------------------- dicomweb-client over HTTP
def test_dicomweb_client_interoperates_with_a_bearer_session(smart):
    app = create_app({"TESTING": True})
    flow = type(smart)(app.test_client())
    token = flow.ehr_token("pt-1001")["access_token"]
    with live_server(lambda port: app) as port:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        client = DICOMwebClient(url=f"http://127.0.0.1:{port}/dicomweb", session=session)
        studies = client.search_for_studies(search_filters={"PatientID": "M0041001"}, fields=["StudyDescription"])
        assert {s["0020000D"]["Value"][0] for s in studies} == PT_1001_UIDS
        assert all("00081030" in s for s in studies)
        (series,) = client.search_for_series(NM)
        instances = client.search_for_instances(NM, series["0020000E"]["Value"][0])
        assert [i["00080018"]["Value"][0] for i in instances] == NM_INSTANCES
        metadata = client.retrieve_study_metadata(NM)
        assert len(metadata) == 2
        png = client.retrieve_instance_rendered(NM, NM_SERIES, NM_INSTANCES[0], media_types=("image/png",),
                                                params={"viewport": "128,128"})
        assert Image.open(io.BytesIO(png)).size == (32, 128)
        session.headers["Authorization"] = "Bearer wrong"
        with pytest.raises(requests.HTTPError) as failure:
            client.search_for_studies()
        assert failure.value.response.status_code == 401
