"""The thumbnail cache (app/dicomweb/thumbnails.py ThumbnailCache): bound to its launch, bounded in bytes, and
what the thumbnail route makes of it (upstream requests counted)."""

from __future__ import annotations

import io

import pytest
import responses
from PIL import Image

from app.dicomweb.images import Thumbnail
from app.dicomweb.thumbnails import ThumbnailCache
from tests.app.conftest import good_token
from tests.dicomweb.test_thumbnail_auth import PACS, THUMB, make_ehr  # noqa: F401  (fixture)
from tests.dicomweb.test_sandbox_images import _launch_id


def thumb(size: int, source: str = "rendered") -> Thumbnail:
    return Thumbnail(b"j" * size, "image/jpeg", 64, 64, source)


def test_the_cache_is_bounded_in_bytes_least_recently_used_first():
    cache = ThumbnailCache(max_entries=100, max_bytes=1000, max_entry_bytes=600)
    cache.put("L1", "a", thumb(400), 60)
    cache.put("L1", "b", thumb(400), 60)
    assert cache.get("L1", "a")[0]  # a is now the most recently used
    cache.put("L1", "c", thumb(400), 60)  # 1200 > 1000: b goes
    assert (cache.get("L1", "b"), cache.get("L1", "a")[0], cache.get("L1", "c")[0]) == ((False, None), True, True)
    assert (len(cache), cache.bytes) == (2, 800)
    cache.put("L1", "a", thumb(100), 60)  # replacing an entry counts its new size only
    assert cache.bytes == 500


def test_an_oversized_thumbnail_is_not_kept_and_evicts_nothing():
    cache = ThumbnailCache(max_bytes=1000, max_entry_bytes=600)
    cache.put("L1", "a", thumb(500), 60)
    cache.put("L1", "big", thumb(601), 60)
    assert (cache.get("L1", "big"), cache.get("L1", "a")[0], cache.bytes) == ((False, None), True, 500)


def test_an_entry_is_bound_to_its_launch():
    cache = ThumbnailCache()
    mine = thumb(10)
    cache.put("L1", "s-1", mine, 60)
    assert cache.get("L1", "s-1") == (True, mine)
    assert cache.get("L2", "s-1") == (False, None)  # same study id, another launch: a miss


def _jpeg(level: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (64, 64), level).save(out, "JPEG")
    return out.getvalue()


def _launch(ehr, launch: str) -> str:
    callback = ehr.authorized(good_token(need_patient_banner=False), launch=launch)
    page = ehr.client.get(callback.headers["Location"])
    assert page.status_code == 200
    return _launch_id(page.get_data(as_text=True))


def test_two_launches_of_the_same_study_never_share_a_cached_thumbnail(make_ehr):  # noqa: F811
    ehr = make_ehr({"send_smart_token": True})
    first, second = _launch(ehr, "L-1"), _launch(ehr, "L-2")
    assert first != second
    ehr.mock.get(THUMB, body=_jpeg(40), content_type="image/jpeg")
    ehr.mock.get(THUMB, body=_jpeg(220), content_type="image/jpeg")
    a = ehr.client.get(f"/l/{first}/studies/s-1/thumbnail")
    b = ehr.client.get(f"/l/{second}/studies/s-1/thumbnail")
    assert len(ehr.calls_to(f"{PACS}/studies/")) == 2  # each launch asked the PACS itself
    levels = [Image.open(io.BytesIO(r.data)).convert("L").getextrema()[0] for r in (a, b)]
    assert abs(levels[0] - 40) <= 3 and abs(levels[1] - 220) <= 3  # each got its own answer
    assert ehr.client.get(f"/l/{first}/studies/s-1/thumbnail").data == a.data
    assert ehr.client.get(f"/l/{second}/studies/s-1/thumbnail").data == b.data
    assert len(ehr.calls_to(f"{PACS}/studies/")) == 2  # then both from the cache
    assert a.headers["Cache-Control"] == "private, max-age=300"


def test_a_failed_thumbnail_is_remembered_for_a_shorter_time(make_ehr, monkeypatch):  # noqa: F811
    clock = [1000.0]
    monkeypatch.setattr("app.dicomweb.thumbnails.time.monotonic", lambda: clock[0])
    ehr = make_ehr({"send_smart_token": True})
    launch = _launch(ehr, "L-1")
    ehr.mock.get(THUMB, status=500, json={})
    ehr.mock.get(THUMB, body=_jpeg(100), content_type="image/jpeg")
    assert ehr.client.get(f"/l/{launch}/studies/s-1/thumbnail").status_code == 404
    assert ehr.client.get(f"/l/{launch}/studies/s-1/thumbnail").status_code == 404
    assert len(ehr.calls_to(f"{PACS}/studies/")) == 1
    clock[0] += 31  # FAILURE_TTL_SECONDS
    assert ehr.client.get(f"/l/{launch}/studies/s-1/thumbnail").status_code == 200
    assert len(ehr.calls_to(f"{PACS}/studies/")) == 2
