"""Fixtures of the launch-store tests: a live ``redis-server`` and a ``store`` of each implementation."""

from __future__ import annotations

import secrets

import pytest

from app.launches.redis_store import RedisLaunchStore
from app.launches.sqlite_store import SqliteLaunchStore
from tests.launches.redis_server import running_redis

SECRET = "launch-store-tests-secret-key-0123456789"


@pytest.fixture(scope="session")
def redis_server():
    """One ``redis-server`` for the session (skipped loudly without the binary, failing under CI=true)."""
    with running_redis() as server:
        yield server


def make_store(kind: str, tmp_path, request, *, secret: str = SECRET, fallbacks=(), prefix: str | None = None):
    """A fresh store of ``kind`` (``sqlite`` | ``redis``): a new file, or a new key prefix on the session's Redis."""
    if kind == "sqlite":
        return SqliteLaunchStore(tmp_path / "launches.sqlite3", secret, fallback_keys=fallbacks)
    server = request.getfixturevalue("redis_server")
    return RedisLaunchStore(server.url, secret, fallback_keys=fallbacks, password=server.password,
                            key_prefix=prefix or f"t-{secrets.token_hex(4)}:")


@pytest.fixture(params=["sqlite", "redis"])
def store_kind(request) -> str:
    return request.param


@pytest.fixture
def store(store_kind, tmp_path, request):
    """The store under test: the same behavioural test runs against SQLite and Redis."""
    return make_store(store_kind, tmp_path, request)
