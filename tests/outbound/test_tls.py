"""Certificates are always verified; a site's private CA is trusted only when the client is given its bundle."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.outbound import OutboundClient, UpstreamUnreachable
from bench.tls import make_certificates


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        body = b'{"resourceType": "Patient", "id": "p"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def tls_server(tmp_path):
    """An https server on 127.0.0.1 whose certificate (for localhost) is signed by a throwaway CA."""
    certificates = make_certificates(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.server_cert, certificates.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://localhost:{server.server_port}", certificates
    server.shutdown()


def test_a_private_ca_is_trusted_only_with_its_bundle(tls_server):
    origin, certificates = tls_server
    trusting = OutboundClient(1, 2, ca_bundle=str(certificates.ca_pem))
    answer = trusting.get(f"{origin}/fhir/Patient/p", policy=trusting.policy("fhir", origin))
    assert (answer.status, answer.json()["id"]) == (200, "p")
    default = OutboundClient(1, 2)
    with pytest.raises(UpstreamUnreachable) as refused:
        default.get(f"{origin}/fhir/Patient/p", policy=default.policy("fhir", origin))
    assert refused.value.reason == "tls"
