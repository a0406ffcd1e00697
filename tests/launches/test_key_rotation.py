"""Rotating ``SECRET_KEY``: launches made under the old key keep working after a restart with the new one.

Procedure under test (README, "Key rotation"): restart with ``SECRET_KEY=K2``
and ``SECRET_KEY_FALLBACKS=K1``; the session cookie signed with K1 is still
accepted (Flask's ``SECRET_KEY_FALLBACKS``), the launch record sealed under K1
opens (MultiFernet) and is re-sealed under K2, so K1 can be dropped once the
longest launch lifetime (8 h) has passed.
"""

from __future__ import annotations

import pytest
import responses

from app import ConfigError, create_app
from app.launches.redis_store import RedisLaunchStore
from app.launches.sqlite_store import SqliteLaunchStore
from tests.app.conftest import MockedEhr, good_token
from tests.app.test_launch_lifecycle import _routes, _start
from tests.support import registration

K1 = "first-key-" + "1" * 40
K2 = "second-key-" + "2" * 40
COOKIE = "imaging_app_session"
DOMAIN = "app.example.net"


@pytest.fixture(params=["sqlite", "redis"])
def store_registration(request, tmp_path, monkeypatch):
    """``(registration, open_raw_store(secret))``: the app's registration with a store of each kind."""
    doc = registration()
    if request.param == "sqlite":
        doc["launch_store"] = {"url": f"sqlite:///{tmp_path}/launches.sqlite3"}
        return doc, lambda secret: SqliteLaunchStore(tmp_path / "launches.sqlite3", secret)
    server = request.getfixturevalue("redis_server")
    monkeypatch.setenv("TEST_REDIS_PASSWORD", server.password)
    prefix = f"rot-{tmp_path.name}:"
    doc["launch_store"] = {"url": server.url, "password_env": "TEST_REDIS_PASSWORD", "key_prefix": prefix}
    return doc, lambda secret: RedisLaunchStore(server.url, secret, password=server.password, key_prefix=prefix)


def _restart(doc, cookie, monkeypatch, secret: str, fallbacks: str | None):
    monkeypatch.setenv("SECRET_KEY", secret)
    if fallbacks is None:
        monkeypatch.delenv("SECRET_KEY_FALLBACKS", raising=False)
    else:
        monkeypatch.setenv("SECRET_KEY_FALLBACKS", fallbacks)
    client = create_app(doc).test_client()
    client.set_cookie(cookie.key, cookie.value, domain=DOMAIN)
    return client


def test_a_launch_made_under_k1_opens_after_restarting_with_k2_and_is_resealed(store_registration, monkeypatch):
    doc, raw_store = store_registration
    monkeypatch.setenv("SECRET_KEY", K1)
    monkeypatch.delenv("SECRET_KEY_FALLBACKS", raising=False)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        ehr = MockedEhr(create_app(doc).test_client(), mock)
        _routes(ehr)
        page_url = _start(ehr, good_token())
        assert ehr.client.get(page_url).status_code == 200
        cookie = ehr.client.get_cookie(COOKIE, domain=DOMAIN)
        launch_id = page_url.split("/")[2]
        assert raw_store(K1).reload(launch_id) is not None
        assert raw_store(K2).reload(launch_id) is None  # sealed under K1 only

        without = _restart(doc, cookie, monkeypatch, K2, None).get(page_url)
        assert without.status_code == 404  # the K1 cookie is not accepted, nor is the record opened

        rotated = _restart(doc, cookie, monkeypatch, K2, f" other-old-key-{'x' * 30},\n{K1} ").get(page_url)
        assert rotated.status_code == 200
        assert "is-1" in rotated.get_data(as_text=True)
    assert raw_store(K2).reload(launch_id).state.patient == "pt-1001"  # re-sealed under K2...
    assert raw_store(K1).reload(launch_id) is None  # ...and no longer under K1


def test_a_short_fallback_key_stops_the_app(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", K2)
    monkeypatch.setenv("SECRET_KEY_FALLBACKS", f"{K1},short")
    with pytest.raises(ConfigError) as raised:
        create_app(registration(), store_path=tmp_path / "s.sqlite3")
    assert str(raised.value) == "SECRET_KEY_FALLBACKS: key 2 is shorter than 32 bytes"
