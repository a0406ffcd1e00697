"""Fixtures of the deployment tests: the session's live ``redis-server`` (shared with tests/launches)."""

from tests.launches.conftest import redis_server  # noqa: F401 - the fixture, registered here too
