"""Loopback servers on raw sockets: the hostile peers of the transport and hostile-EHR tests.

:class:`LoopbackServer` listens on 127.0.0.1 port 0, counts connections and
parsed requests, and hands each request to a handler ``(request, conn) -> None``
that writes whatever bytes it likes (trickles, lies about lengths, redirects).
Connections are kept alive until the handler closes them or the client does.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from dataclasses import dataclass, field



@dataclass
class Request:
    method: str
    target: str
    headers: dict
    body: bytes = b""


def response_bytes(status: int = 200, body: bytes = b"", headers: dict | None = None, reason: str = "X") -> bytes:
    headers = {"Content-Length": str(len(body)), **(headers or {})}
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + body


def json_response(value, status: int = 200, content_type: str = "application/json", raw: bytes | None = None) -> bytes:
    body = raw if raw is not None else json.dumps(value).encode()
    return response_bytes(status, body, {"Content-Type": content_type})


@dataclass
class LoopbackServer:
    handler: object
    requests: list = field(default_factory=list)
    connections: int = 0

    def __post_init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self._closed = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return self.origin + path

    def _accept(self):
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                body, buffer = buffer[:length], buffer[length:]
                request = Request(method, target, headers, body)
                with self._lock:
                    self.requests.append(request)
                if self.handler(request, conn) is False:
                    conn.close()
                    return
        except OSError:
            return

    def close(self):
        self._closed = True
        self.sock.close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.close()
                except OSError:
                    pass


def reply(data: bytes):
    """A handler sending ``data`` to every request."""
    def handler(request, conn):
        conn.sendall(data)
    return handler


def trickle(head: bytes, body: bytes, every: float):
    """A handler sending ``head`` at once and then ``body`` one byte every ``every`` seconds."""
    def handler(request, conn):
        conn.sendall(head)
        for byte in body:
            time.sleep(every)
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return False
        return False
    return handler


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9)
