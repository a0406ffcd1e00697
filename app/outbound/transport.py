"""Transport pieces of the guarded client: the overall deadline and the shared connection pools.

The deadline of an exchange is enforced two ways:

* before every body read the socket timeout is shrunk to
  ``min(read_timeout, time left)`` and the body is read with ``read1`` (at most
  one ``recv`` per call), so a server trickling a byte every few seconds is cut
  at the deadline, not at ``read_timeout`` per chunk;
* a single watchdog thread ``shutdown()``\\ s the sockets of an exchange whose
  deadline has passed, which also ends a blocked read in the header phase
  (``http.client`` reads the status line and headers with many ``recv``\\ s,
  each of which would otherwise restart the read timeout).

Sockets reach their exchange through :data:`current_exchange` (a context
variable, so per thread): the guarded urllib3 connection classes attach their
socket when they connect and before each request and response.

Not covered by the deadline: DNS resolution (``getaddrinfo`` cannot be
interrupted); it is bounded by the resolver's own timeouts.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from contextvars import ContextVar

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry


class Exchange:
    """Deadline bookkeeping of one exchange (thread-safe).

    ``deadline``: :func:`time.monotonic` value; ``expired``: set once the
    watchdog fired. Sockets attached after expiry are shut down at once.
    """

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.expired = False
        self.sock: socket.socket | None = None
        self._socks: list[socket.socket] = []
        self._done = False
        self._lock = threading.Lock()

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once passed)."""
        return self.deadline - time.monotonic()

    def attach(self, sock: socket.socket | None) -> None:
        """Register ``sock`` as carrying this exchange (idempotent); the newest one is :attr:`sock`."""
        if sock is None:
            return
        with self._lock:
            self.sock = sock
            if not any(s is sock for s in self._socks):
                self._socks.append(sock)
            expired = self.expired and not self._done
        if expired:
            _shutdown(sock)

    def expire(self) -> None:
        """Called by the watchdog at the deadline: shut the sockets down (a blocked read then returns)."""
        with self._lock:
            if self._done:
                return
            self.expired = True
            socks = list(self._socks)
        for sock in socks:
            _shutdown(sock)

    def finish(self) -> None:
        """The exchange is over: the watchdog must not touch its (possibly pooled) sockets any more."""
        with self._lock:
            self._done = True
            self._socks.clear()
            self.sock = None


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


current_exchange: ContextVar[Exchange | None] = ContextVar("outbound_exchange", default=None)


class Watchdog:
    """One daemon thread expiring exchanges at their deadlines (started lazily, restarted after ``fork``)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Exchange]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = None

    def arm(self, exchange: Exchange) -> None:
        """Expire ``exchange`` at ``exchange.deadline`` unless it has finished by then."""
        with self._cond:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._heap = []
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="outbound-watchdog", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (exchange.deadline, next(self._seq), exchange))
            if self._heap[0][2] is exchange:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            due = []
            with self._cond:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
                if not due:
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
                    continue
            for exchange in due:
                exchange.expire()


WATCHDOG = Watchdog()


class _AttachMixin:
    """urllib3 connection hooks registering the socket with the running :class:`Exchange`."""

    def _attach(self, sock=None) -> None:
        exchange = current_exchange.get()
        if exchange is not None:
            exchange.attach(sock if sock is not None else getattr(self, "sock", None))

    def _new_conn(self):  # the plain TCP socket, before any TLS handshake
        sock = super()._new_conn()
        self._attach(sock)
        return sock

    def connect(self):
        super().connect()
        self._attach()

    def request(self, *args, **kwargs):
        self._attach()
        return super().request(*args, **kwargs)

    def getresponse(self, *args, **kwargs):
        self._attach()
        return super().getresponse(*args, **kwargs)


class GuardedHTTPConnection(_AttachMixin, HTTPConnection):
    """urllib3 ``HTTPConnection`` whose sockets the deadline watchdog can reach."""


class GuardedHTTPSConnection(_AttachMixin, HTTPSConnection):
    """urllib3 ``HTTPSConnection`` whose sockets the deadline watchdog can reach."""


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """``requests`` transport adapter on guarded connection pools, no retries of its own.

    ``pool_connections``: number of per-origin pools kept; ``pool_maxsize``:
    connections kept per origin (keep-alive across exchanges and launches).
    Retries are the client's (it knows the deadline).
    """

    def __init__(self, pool_connections: int = 8, pool_maxsize: int = 16):
        super().__init__(pool_connections=pool_connections, pool_maxsize=pool_maxsize,
                         max_retries=Retry(total=0, read=False, redirect=False, raise_on_redirect=False))

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPConnectionPool,
                                                   "https": _GuardedHTTPSConnectionPool}

    def proxy_manager_for(self, proxy, **proxy_kwargs):  # pragma: no cover - never given proxies
        raise RuntimeError("the guarded client does not use proxies")
