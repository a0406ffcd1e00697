"""Thumbnail fallbacks, DICOMweb access rules and image checks (app/dicomweb/) against a mocked PACS (responses)."""

from __future__ import annotations

import base64
import io

import pytest
import responses
from PIL import Image

from app.config import DicomwebSettings
from app.dicomweb.access import BASIC, BEARER, Access, access_for
from app.dicomweb.errors import DicomwebBadContent, DicomwebHttpError
from app.dicomweb.images import reencode
from app.dicomweb.service import DICOMWEB_LIMITS, DicomwebService
from app.dicomweb.thumbnails import StudyRef, ThumbnailCache, fetch_thumbnail
from app.outbound import OutboundClient

BASE = "https://pacs.example.org/dicom-web"
ISS = "https://ehr.example.org/fhir"
STUDY, SERIES, SOP = "1.2.3", "1.2.3.4", "1.2.3.4.5"


def image_bytes(fmt: str = "JPEG", size=(200, 100), color=200) -> bytes:
    out = io.BytesIO()
    Image.new("L", size, color).save(out, fmt)
    return out.getvalue()


def service(access: Access = Access(BEARER), token: str | None = "tok-good") -> DicomwebService:
    return DicomwebService(BASE, OutboundClient(1, 2, limits=DICOMWEB_LIMITS), access, bearer_token=token)


def _jpeg(url: str, body: bytes | None = None, status: int = 200, media: str = "image/jpeg"):
    responses.get(url, body=body if body is not None else image_bytes(), status=status, content_type=media)


def _paths() -> list[str]:
    return [c.request.url.removeprefix(BASE) for c in responses.calls]


@responses.activate
def test_the_study_thumbnail_is_asked_first_with_a_literal_comma_viewport_and_re_encoded():
    _jpeg(f"{BASE}/studies/{STUDY}/thumbnail", image_bytes(size=(200, 100)))
    thumbnail = fetch_thumbnail(service(), StudyRef(STUDY, SERIES, SOP))
    assert (thumbnail.source, thumbnail.media_type, thumbnail.width, thumbnail.height) == \
        ("study-thumbnail", "image/jpeg", 128, 64)
    assert _paths() == [f"/studies/{STUDY}/thumbnail?viewport=128,128"]
    request = _calls()[0].request
    assert request.headers["Accept"] == "image/jpeg, image/png;q=0.9"
    assert request.headers["Authorization"] == "Bearer tok-good"
    assert Image.open(io.BytesIO(thumbnail.content)).format == "JPEG"


@responses.activate
def test_then_the_series_thumbnail_of_the_imaging_study_series():
    _jpeg(f"{BASE}/studies/{STUDY}/thumbnail", b"", status=404, media="application/json")
    _jpeg(f"{BASE}/studies/{STUDY}/series/{SERIES}/thumbnail", image_bytes("PNG", (64, 64)), media="image/png")
    thumbnail = fetch_thumbnail(service(), StudyRef(STUDY, SERIES, SOP))
    assert (thumbnail.source, thumbnail.width, thumbnail.height) == ("series-thumbnail", 64, 64)
    assert _paths() == [f"/studies/{STUDY}/thumbnail?viewport=128,128",
                        f"/studies/{STUDY}/series/{SERIES}/thumbnail?viewport=128,128"]


@responses.activate
def test_then_the_rendered_instance_from_qido_rs_when_the_study_lists_no_series():
    _jpeg(f"{BASE}/studies/{STUDY}/thumbnail", b"", status=406, media="application/json")
    responses.get(f"{BASE}/studies/{STUDY}/series", content_type="application/dicom+json", json=[
        {"0020000E": {"vr": "UI", "Value": ["1.2.3.9"]}, "00080060": {"vr": "CS", "Value": ["SR"]},
         "00200011": {"vr": "IS", "Value": [1]}},
        {"0020000E": {"vr": "UI", "Value": [SERIES]}, "00080060": {"vr": "CS", "Value": ["CT"]},
         "00200011": {"vr": "IS", "Value": [2]}}])
    responses.get(f"{BASE}/studies/{STUDY}/series/{SERIES}/instances", content_type="application/dicom+json", json=[
        {"00080018": {"vr": "UI", "Value": [f"{SERIES}.{n}"]}, "00200013": {"vr": "IS", "Value": [n]},
         "00280010": {"vr": "US", "Value": [240]}, "00280011": {"vr": "US", "Value": [320]}} for n in (1, 2, 3)])
    _jpeg(f"{BASE}/studies/{STUDY}/series/{SERIES}/thumbnail", b"", status=404, media="text/plain")
    _jpeg(f"{BASE}/studies/{STUDY}/series/{SERIES}/instances/{SERIES}.2/rendered", image_bytes(size=(128, 96)))
    thumbnail = fetch_thumbnail(service(), StudyRef(STUDY))
    assert (thumbnail.source, thumbnail.width, thumbnail.height) == ("rendered", 128, 96)
    assert _paths()[-1] == f"/studies/{STUDY}/series/{SERIES}/instances/{SERIES}.2/rendered?viewport=128,96"
    assert _calls()[-1].request.headers["Accept"] == "image/jpeg"
    assert _calls()[1].request.headers["Accept"] == "application/dicom+json, application/json;q=0.9"


@responses.activate
def test_an_answer_that_is_not_the_image_it_claims_falls_through_and_then_gives_none():
    _jpeg(f"{BASE}/studies/{STUDY}/thumbnail", b"<html>not an image</html>")
    _jpeg(f"{BASE}/studies/{STUDY}/series/{SERIES}/thumbnail", image_bytes("PNG"), media="image/jpeg")  # PNG as JPEG
    _jpeg(f"{BASE}/studies/{STUDY}/series/{SERIES}/instances/{SOP}/rendered", b"x", media="text/html")
    assert fetch_thumbnail(service(), StudyRef(STUDY, SERIES, SOP)) is None
    assert len(_calls()) == 3


@pytest.mark.parametrize("status", [401, 403, 500])
@responses.activate
def test_a_refused_credential_or_a_server_error_ends_the_chain(status):
    _jpeg(f"{BASE}/studies/{STUDY}/thumbnail", b"", status=status, media="application/json")
    with pytest.raises(DicomwebHttpError) as caught:
        fetch_thumbnail(service(), StudyRef(STUDY, SERIES, SOP))
    assert (caught.value.status, caught.value.operation, len(_calls())) == (status, "study-thumbnail", 1)


@responses.activate
def test_basic_access_sends_the_pacs_credentials_and_no_token():
    _jpeg(f"{BASE}/studies/{STUDY}/thumbnail")
    fetch_thumbnail(service(Access(BASIC, ("pacs", "s3cret")), token=None), StudyRef(STUDY))
    assert _calls()[0].request.headers["Authorization"] == "Basic " + base64.b64encode(b"pacs:s3cret").decode()



def _calls() -> list:
    """The mocked requests this test's code made (background threads of other tests may use the mock too)."""
    return [call for call in responses.calls if call.request.url.startswith(BASE)]


def test_a_bomb_is_refused_before_its_pixels_are_decoded(monkeypatch):
    monkeypatch.setattr("app.dicomweb.images.MAX_SOURCE_PIXELS", 100 * 100)
    with pytest.raises(DicomwebBadContent) as caught:
        reencode(image_bytes(size=(101, 100)), "image/jpeg", (128, 128), "rendered")
    assert caught.value.problem == "image-too-large"
    assert reencode(image_bytes(size=(100, 100)), "image/jpeg", (128, 128), "rendered").width == 100


def test_uids_from_upstream_never_shape_the_path():
    with pytest.raises(ValueError):
        service().series_thumbnail(STUDY, "1.2/../../admin", (128, 128))


REGISTERED = DicomwebSettings(base_url=BASE, basic_auth_env="PACS_AUTH")


@pytest.mark.parametrize("base,associated,registered,environ,mode", [
    ("https://ehr.example.org/dicomweb", (), None, {}, BEARER),  # same origin as iss
    ("https://img.example.org/wado/rs", ("https://img.example.org/wado",), None, {}, BEARER),  # associated_endpoints
    ("https://img.example.org/wado-evil", ("https://img.example.org/wado",), None, {}, None),  # not under it
    (BASE, (), DicomwebSettings(base_url=BASE, send_smart_token=True), {}, BEARER),  # the registration says so
    (BASE, (), REGISTERED, {"PACS_AUTH": "pacs:s3cret"}, BASIC),  # basic credentials from the environment
    (BASE, (), REGISTERED, {}, None),  # variable unset
    ("https://pacs.example.org:8443/dicom-web", (), REGISTERED, {"PACS_AUTH": "pacs:s3cret"}, None),  # other origin
    ("https://unknown.example.org/dicomweb", (), None, {}, None),  # an EHR's Endpoint elsewhere gets nothing
])
def test_which_credentials_a_dicomweb_base_gets(base, associated, registered, environ, mode):
    access = access_for(base, iss=ISS, associated_endpoints=associated, registered=registered, environ=environ)
    assert (access.mode if access else None) == mode
    if mode == BASIC:
        assert access.basic == ("pacs", "s3cret") and "s3cret" not in repr(access)


def test_the_cache_is_bounded_per_launch_and_expires(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("app.dicomweb.thumbnails.time.monotonic", lambda: clock[0])
    cache = ThumbnailCache(max_entries=2)
    thumb = reencode(image_bytes(), "image/jpeg", (128, 128), "rendered")
    cache.put("L1", "s1", thumb, 60)
    cache.put("L1", "s2", None, 60)
    cache.put("L2", "s1", thumb, 60)
    assert (len(cache), cache.get("L1", "s1"), cache.get("L2", "s1")[1] is thumb) == (2, (False, None), True)
    assert cache.get("L1", "s2") == (True, None)
    clock[0] += 61
    assert cache.get("L2", "s1") == (False, None)
