"""A scripted hostile EHR for the bench: ``python -m bench.hostile_ehr --port P --app-origin http://127.0.0.1:A``.

Plain HTTP on 127.0.0.1 (the app accepts ``http`` only on loopback), raw
sockets, one request per connection (``Connection: close``), a thread per
connection (at most :data:`MAX_CONNECTIONS` at once; more are closed at once).
Its FHIR base (``iss``) is ``http://127.0.0.1:P/fhir``.

* ``GET /fhir/.well-known/smart-configuration``: authorize and token
  endpoints, ``issuer`` (its origin) and ``authorization_response_iss_parameter_supported``;
* ``GET /authorize``: 303 straight back to ``redirect_uri`` (which must be on
  ``--app-origin``) with a code, the app's ``state`` and ``iss`` (advertised above);
* ``POST /token``: a good bearer token with ``patient`` :data:`PATIENT`;
* ``GET /fhir/Patient/<PATIENT>``: a small Patient;
* ``GET /fhir/ImagingStudy``: by the current *mode* (``GET /__bench/mode?set=...``):
  ``small`` one study; ``trickle`` the headers (``Content-Length`` 1 MB) and one
  :data:`TRICKLE_CHUNK`-byte chunk every ``--trickle-seconds`` (5), at most
  :data:`TRICKLE_MAX_CHUNKS` chunks, until the client hangs up; ``big`` a
  50 MB searchset Bundle with ``Content-Length``; ``big-chunked`` the same
  Bundle with ``Transfer-Encoding: chunked`` (no length announced).

``GET /__bench/stats`` (``?reset=1``) answers JSON: requests by path, trickles
open now, and per ImagingStudy answer the bytes written before it ended and
how it ended (``complete`` or ``client closed``). Bytes "written" are bytes
the kernel accepted; loopback socket buffers hold a few MB of them unread.
"""

from __future__ import annotations

import argparse
import json
import socket
import socketserver
import threading
import time
from urllib.parse import parse_qs, urlencode, urlsplit

HOST = "127.0.0.1"
PATIENT = "pt-hostile"
MAX_CONNECTIONS = 256
TRICKLE_CHUNK = 16
TRICKLE_MAX_CHUNKS = 40  # 200 s at 5 s: longer than any deadline the bench sets
TRICKLE_ANNOUNCED = 1_000_000
BIG_BYTES = 50 * 1000 * 1000
SEND_PIECE = 256 * 1024
MODES = ("small", "trickle", "big", "big-chunked")


def _study(index: int, pad: str = "") -> dict:
    return {"resourceType": "ImagingStudy", "id": f"hs-{index}", "status": "available",
            "subject": {"reference": f"Patient/{PATIENT}"}, "started": "2024-01-01T10:00:00Z",
            "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:2.25.{1000 + index}"}],
            "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}],
            **({"description": pad} if pad else {})}


def big_bundle(size: int = BIG_BYTES) -> bytes:
    """A valid searchset Bundle of about ``size`` bytes (entries of ~1 KB each)."""
    head = b'{"resourceType":"Bundle","type":"searchset","entry":['
    pieces, total, index = [], len(head) + 2, 0
    while total < size:
        entry = json.dumps({"resource": _study(index, "x" * 800), "search": {"mode": "match"}}).encode()
        pieces.append(entry)
        total += len(entry) + 1
        index += 1
    return head + b",".join(pieces) + b"]}"


def head_bytes(status: int, headers: dict, reason: str = "OK") -> bytes:
    return (f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n").encode("latin-1")


def json_answer(value, status: int = 200, content_type: str = "application/json") -> bytes:
    body = json.dumps(value).encode()
    return head_bytes(status, {"Content-Type": content_type, "Content-Length": str(len(body)),
                               "Connection": "close"}) + body


class State:
    """The server's mode and counters (shared by the connection threads)."""

    def __init__(self, origin: str, app_origin: str, trickle_seconds: float):
        self.origin = origin
        self.app_origin = app_origin.rstrip("/")
        self.trickle_seconds = trickle_seconds
        self.mode = "small"
        self.lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._big: bytes | None = None
        self.reset()

    def reset(self) -> None:
        self.requests: dict[str, int] = {}
        self.answers: list[dict] = []
        self.trickles_open = 0
        self.trickles_open_max = 0
        self.refused_connections = 0

    def big(self) -> bytes:
        with self.lock:
            if self._big is None:
                self._big = big_bundle()
            return self._big

    def stats(self, reset: bool) -> dict:
        with self.lock:
            out = {"mode": self.mode, "requests": dict(self.requests), "answers": list(self.answers),
                   "trickles_open": self.trickles_open, "trickles_open_max": self.trickles_open_max,
                   "refused_connections": self.refused_connections}
            if reset:
                self.reset()
        return out


def _send_counted(conn: socket.socket, data: bytes | memoryview) -> tuple[int, bool]:
    """Send ``data`` in pieces; ``(bytes written, completed)`` (False when the client hung up)."""
    view, sent = memoryview(data), 0
    try:
        while sent < len(view):
            conn.sendall(view[sent:sent + SEND_PIECE])
            sent += min(SEND_PIECE, len(view) - sent)
    except OSError:
        return sent, False
    return sent, True


class Handler(socketserver.BaseRequestHandler):
    """One connection, one request."""

    server: "Server"

    def handle(self) -> None:
        state = self.server.state
        if not state.slots.acquire(blocking=False):
            with state.lock:
                state.refused_connections += 1
            return
        try:
            self._handle(state)
        except OSError:
            pass
        finally:
            state.slots.release()

    def _read_request(self) -> tuple[str, str, dict, bytes] | None:
        conn = self.request
        conn.settimeout(30)
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            data = conn.recv(65536)
            if not data or len(buffer) > 65536:
                return None
            buffer += data
        head, body = buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = min(int(headers.get("content-length", "0") or 0), 65536)
        while len(body) < length:
            data = conn.recv(65536)
            if not data:
                break
            body += data
        return method, target, headers, body

    def _handle(self, state: State) -> None:
        parsed = self._read_request()
        if parsed is None:
            return
        method, target, _, _ = parsed
        path, _, query_string = target.partition("?")
        query = {k: v[0] for k, v in parse_qs(query_string).items()}
        with state.lock:
            state.requests[path] = state.requests.get(path, 0) + 1
        conn = self.request
        if path == "/__bench/stats":
            conn.sendall(json_answer(state.stats(reset=query.get("reset") == "1")))
        elif path == "/__bench/mode":
            wanted = query.get("set", "")
            if wanted in MODES:
                state.mode = wanted
                if wanted.startswith("big"):
                    state.big()  # built now, not inside a measured load
                conn.sendall(json_answer({"mode": state.mode}))
            else:
                conn.sendall(json_answer({"error": f"mode must be one of {MODES}"}, 400))
        elif path == "/fhir/.well-known/smart-configuration":
            conn.sendall(json_answer({
                "issuer": state.origin, "authorization_endpoint": f"{state.origin}/authorize",
                "token_endpoint": f"{state.origin}/token", "authorization_response_iss_parameter_supported": True,
                "capabilities": ["launch-standalone", "launch-ehr", "permission-v2", "context-standalone-patient"],
                "code_challenge_methods_supported": ["S256"], "response_types_supported": ["code"]}))
        elif path == "/authorize":
            redirect_uri = query.get("redirect_uri", "")
            if not redirect_uri.startswith(state.app_origin + "/"):
                conn.sendall(json_answer({"error": "redirect_uri not on the app's origin"}, 400))
                return
            location = redirect_uri + "?" + urlencode({"code": "hostile-code", "state": query.get("state", ""),
                                                       "iss": state.origin})
            conn.sendall(head_bytes(303, {"Location": location, "Content-Length": "0", "Connection": "close"},
                                    "See Other"))
        elif path == "/token" and method == "POST":
            conn.sendall(json_answer({"access_token": "tok-hostile-bench", "token_type": "Bearer",
                                      "expires_in": 3600, "patient": PATIENT,
                                      "scope": "launch/patient patient/ImagingStudy.rs patient/Patient.rs"}))
        elif path == f"/fhir/Patient/{PATIENT}":
            conn.sendall(json_answer({"resourceType": "Patient", "id": PATIENT,
                                      "name": [{"family": "Hostile", "given": ["Bench"]}]},
                                     content_type="application/fhir+json"))
        elif path == "/fhir/ImagingStudy":
            self._imaging_study(state, conn)
        else:
            conn.sendall(json_answer({"resourceType": "OperationOutcome"}, 404))

    def _imaging_study(self, state: State, conn: socket.socket) -> None:
        mode, started = state.mode, time.monotonic()
        fhir = "application/fhir+json"
        if mode == "small":
            body = json.dumps({"resourceType": "Bundle", "type": "searchset",
                               "entry": [{"resource": _study(1), "search": {"mode": "match"}}]}).encode()
            written, complete = _send_counted(conn, head_bytes(200, {"Content-Type": fhir,
                                              "Content-Length": str(len(body)), "Connection": "close"}) + body)
        elif mode == "trickle":
            with state.lock:
                state.trickles_open += 1
                state.trickles_open_max = max(state.trickles_open_max, state.trickles_open)
            try:
                written, complete = self._trickle(state, conn, fhir)
            finally:
                with state.lock:
                    state.trickles_open -= 1
        elif mode == "big":
            body = state.big()
            written, complete = _send_counted(conn, head_bytes(200, {"Content-Type": fhir,
                                              "Content-Length": str(len(body)), "Connection": "close"}))
            if complete:
                more, complete = _send_counted(conn, body)
                written += more
        else:  # big-chunked: no length announced; chunks of 1 MB
            body = state.big()
            written, complete = _send_counted(conn, head_bytes(200, {"Content-Type": fhir,
                                              "Transfer-Encoding": "chunked", "Connection": "close"}))
            view = memoryview(body)
            for at in range(0, len(view), 1_000_000):
                if not complete:
                    break
                piece = view[at:at + 1_000_000]
                more, complete = _send_counted(conn, b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
                written += more
            if complete:
                more, complete = _send_counted(conn, b"0\r\n\r\n")
                written += more
        with state.lock:
            state.answers.append({"mode": mode, "bytes_written": written, "seconds": time.monotonic() - started,
                                  "ended": "complete" if complete else "client closed"})

    def _trickle(self, state: State, conn: socket.socket, content_type: str) -> tuple[int, bool]:
        written, complete = _send_counted(conn, head_bytes(200, {"Content-Type": content_type, "Connection": "close",
                                                                 "Content-Length": str(TRICKLE_ANNOUNCED)}))
        chunk = b"{" + b" " * (TRICKLE_CHUNK - 1)
        for _ in range(TRICKLE_MAX_CHUNKS):
            if not complete:
                break
            more, complete = _send_counted(conn, chunk)
            written += more
            chunk = b" " * TRICKLE_CHUNK
            # wait for the next chunk, but notice at once when the client hangs up
            conn.settimeout(state.trickle_seconds)
            try:
                if conn.recv(1) == b"":
                    return written, False
            except socket.timeout:
                pass
            except OSError:
                return written, False
        return written, False  # never a complete body: the announced length is never reached


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port: int, state: State):
        self.state = state
        super().__init__((HOST, port), Handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile_ehr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app-origin", required=True, help="the app's origin; /authorize redirects only there")
    parser.add_argument("--trickle-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    if urlsplit(args.app_origin).hostname not in ("127.0.0.1", "localhost"):
        parser.error("--app-origin must be on loopback")
    state = State(f"http://{HOST}:{args.port}", args.app_origin, args.trickle_seconds)
    with Server(args.port, state) as server:
        server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
