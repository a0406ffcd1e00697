"""A latency-injecting TCP proxy (asyncio): ``python -m bench.proxy --port P --upstream-port U --rtt-ms 50 --control-port C``.

It sits between the clients (the app, the baseline, the bench's browser) and
the sandbox EHR, on loopback, and forwards bytes unchanged (TLS goes through
end to end, so the TLS handshake crosses it like any other bytes). Timing,
with ``half = rtt / 2``:

* every chunk read from one side is written to the other ``half`` later
  (per direction, in order; bandwidth is not limited and TCP slow start is
  not modelled);
* a new connection costs one round trip: the client's first bytes are not
  delivered before ``accept + rtt + half`` (the SYN / SYN-ACK exchange the
  client's ``connect()`` would have waited for on a real network; on loopback
  ``connect()`` returns at once). A TLS 1.3 handshake then costs one more
  round trip, so a request on a fresh connection takes 3 round trips and one
  on a kept-alive connection takes 1.

(This kernel has no netem qdisc, so ``tc`` cannot add the delay.)

It counts the connections it accepts by the client's source address (the
bench's browser binds 127.0.0.2, app processes connect from 127.0.0.1) and
lists the open ones with their peer ports, so the bench can attribute them to
processes (``bench.procs.socket_owners``). ``GET /stats`` on the control
port (plain HTTP, loopback) answers JSON; ``?reset=1`` clears the counters
(open connections stay listed).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import time

HOST = "127.0.0.1"
CHUNK = 256 * 1024


class Proxy:
    """State and counters of one proxy (one upstream origin)."""

    def __init__(self, upstream_port: int, rtt_s: float):
        self.upstream_port = upstream_port
        self.rtt_s = rtt_s
        self.half_s = rtt_s / 2
        self.open: dict[int, dict] = {}
        self._ids = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        """Clear the counters (not the open-connection list)."""
        self.accepted: dict[str, int] = {}
        self.closed = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.since = time.time()

    def stats(self) -> dict:
        """Counters since the last reset and the connections open now."""
        return {"rtt_ms": self.rtt_s * 1000, "since": self.since, "until": time.time(),
                "accepted": dict(self.accepted), "accepted_total": sum(self.accepted.values()),
                "closed": self.closed, "bytes_up": self.bytes_up, "bytes_down": self.bytes_down,
                "open": list(self.open.values())}

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first_at: float,
                    upstream: bool) -> None:
        """Copy ``reader`` to ``writer``, each chunk ``half`` later and none before ``first_at``."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver():
            while True:
                at, data = await queue.get()
                delay = at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if data is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(CHUNK)
                at = max(loop.time() + self.half_s, first_at)
                if not data:
                    queue.put_nowait((at, None))
                    break
                if upstream:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
                queue.put_nowait((at, data))
            await sender
        except (ConnectionError, OSError):
            sender.cancel()
            raise
        finally:
            if not sender.done():
                sender.cancel()

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        """One client connection: connect upstream, pump both ways with the delays, count it."""
        loop = asyncio.get_running_loop()
        accepted_at = loop.time()
        peer = client_writer.get_extra_info("peername") or ("?", 0)
        conn_id = next(self._ids)
        self.accepted[peer[0]] = self.accepted.get(peer[0], 0) + 1
        self.open[conn_id] = {"id": conn_id, "peer": peer[0], "port": peer[1], "opened": time.time()}
        upstream_writer = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(HOST, self.upstream_port)
            up = self._pump(client_reader, upstream_writer, accepted_at + self.rtt_s + self.half_s, True)
            down = self._pump(upstream_reader, client_writer, 0.0, False)
            await asyncio.wait_for(asyncio.gather(up, down), timeout=3600)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass
        finally:
            self.open.pop(conn_id, None)
            self.closed += 1
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    writer.close()

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """``GET /stats[?reset=1]`` → JSON (one request per connection)."""
        try:
            request_line = (await asyncio.wait_for(reader.readline(), 5)).decode("latin-1")
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            body = json.dumps(self.stats()).encode()
            if "reset=1" in request_line:
                self.reset()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()


async def serve(port: int, upstream_port: int, rtt_ms: float, control_port: int) -> None:
    """Run the proxy and its control listener until SIGTERM/SIGINT."""
    proxy = Proxy(upstream_port, rtt_ms / 1000)
    server = await asyncio.start_server(proxy.handle, HOST, port, backlog=1024)
    control = await asyncio.start_server(proxy.control, HOST, control_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server, control:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Parse the flags and serve."""
    parser = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True, help="listen on 127.0.0.1:PORT")
    parser.add_argument("--upstream-port", type=int, required=True, help="forward to 127.0.0.1:PORT")
    parser.add_argument("--rtt-ms", type=float, default=50.0)
    parser.add_argument("--control-port", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.upstream_port, args.rtt_ms, args.control_port))


if __name__ == "__main__":
    main()
