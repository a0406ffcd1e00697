"""Fixtures for the outbound client's transport tests: loopback servers (:mod:`tests.loopback`) and a client."""

from __future__ import annotations

import pytest

from app.outbound import OutboundClient
from tests.loopback import LoopbackServer


@pytest.fixture
def make_server():
    servers = []

    def make(handler) -> LoopbackServer:
        server = LoopbackServer(handler)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def client():
    outbound = OutboundClient(connect_timeout=1.0, read_timeout=2.0, pool_size=4)
    yield outbound
    outbound.close()
