"""A real Redis for the tests: Debian's ``redis-server`` on a free loopback port, data in a temporary folder.

``running_redis()`` starts the binary with ``--bind 127.0.0.1``, a generated
``requirepass``, no persistence (``--save ""``, ``--appendonly no``) and its
working directory in a temporary folder; it waits until ``PING`` answers and
stops the process on exit. Without the binary it skips the calling test with
one loud line (``tests.environment.require``), and fails under ``CI=true``
(``.ci/run`` installs ``redis-server``). The session fixture ``redis_server``
is in ``tests/launches/conftest.py``.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import redis

from tests.environment import require
from tests.processes import stop

INSTALL_HINT = "redis-server not installed (apt-get install redis-server)"
STARTUP_TIMEOUT = 15.0


@dataclass(frozen=True)
class RedisServer:
    """A running ``redis-server``: ``url`` (``redis://127.0.0.1:<port>/0``, no password in it), ``password``, ``pid``."""

    url: str
    password: str
    port: int
    process: subprocess.Popen

    def client(self) -> redis.Redis:
        """A client of this server (the tests' look behind the store)."""
        return redis.Redis.from_url(self.url, password=self.password)


def redis_binary() -> str | None:
    """The path of ``redis-server``, or ``None``."""
    return shutil.which("redis-server") or (shutil.which("redis-server", path="/usr/bin:/usr/sbin"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    """Start ``redis-server`` on loopback; skip (fail on CI) when it is not installed."""
    binary = redis_binary()
    require(binary is not None, INSTALL_HINT)
    password = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="redis-tests-") as folder:
        port = _free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder, "--save", "",
             "--appendonly", "no", "--requirepass", password, "--protected-mode", "yes", "--logfile",
             f"{folder}/redis.log", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = RedisServer(url=f"redis://127.0.0.1:{port}/0", password=password, port=port, process=process)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            client = server.client()
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start on port {port}") from None
                    time.sleep(0.05)
            client.close()
            yield server
        finally:
            stop(process)
