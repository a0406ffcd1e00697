"""Server processes for the benchmarks: free loopback ports, start/stop, readiness, memory from /proc.

Every server runs in its own process (``python -m bench.sandbox_server``, and
gunicorn for the app, instrumented or not) so that its memory can be read
from ``/proc/<pid>/status`` and its CPU does not share the bench's GIL.
Only loopback (127.0.0.1) is used.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import requests

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on loopback right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, seconds: float = 30.0) -> None:
    """Poll ``url`` until it answers (any status); raise if the process dies or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server process exited with {process.returncode} before answering {url}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise RuntimeError(f"no answer from {url} within {seconds:.0f} s")


@contextmanager
def server(argv: Sequence[str], ready_url: str, env: dict | None = None, log_path: Path | None = None
           ) -> Iterator[subprocess.Popen]:
    """Run ``argv`` (cwd = project root) until the block ends; yields the Popen once ``ready_url`` answers.

    Output goes to ``log_path`` (or is discarded). Stopped with SIGTERM (then SIGKILL after 5 s).
    """
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(list(argv), cwd=ROOT, env={**os.environ, **(env or {})},
                               stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(ready_url, process)
        yield process
    finally:
        kids = [(pid, _cmdline(pid)) for pid in children(process.pid)] if process.poll() is None else []
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        _kill_orphans(kids)
        if log_path:
            out.close()


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def _kill_orphans(kids: list[tuple[int, bytes]]) -> None:
    """SIGKILL the server's former children (gunicorn workers) still running after it stopped.

    A gthread worker holding a client's kept-alive connection waits out gunicorn's graceful timeout
    (30 s) after SIGTERM, keeping the port bound after its arbiter was killed. Only a pid whose command
    line is still the one it had as our server's child is signalled (no broad kill, no reused pid).
    """
    for pid, cmdline in kids:
        if cmdline and _cmdline(pid) == cmdline:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue


def python_module(module: str, *args: str) -> list[str]:
    """``[python, -m, module, *args]`` with the interpreter running the bench (the venv)."""
    return [sys.executable, "-m", module, *args]


def memory_kb(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of a process in kB, from ``/proc/<pid>/status``."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def reset_peak(pid: int) -> bool:
    """Reset a process's ``VmHWM`` to its current RSS (``echo 5 > /proc/<pid>/clear_refs``); False if refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def children(pid: int) -> list[int]:
    """Direct child process ids (gunicorn workers of an arbiter), from ``/proc/<pid>/task/*/children``."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(found))


def _stat_fields(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def cpu_seconds(pids: list[int]) -> float:
    """``utime + stime`` of the given processes in seconds (``/proc/<pid>/stat``); gone processes count 0."""
    total = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def cpu_times() -> tuple[float, float]:
    """``(busy, total)`` CPU seconds of the whole machine since boot, from the first line of ``/proc/stat``."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return (total - idle) / ticks, total / ticks


def own_tree_cpu_seconds() -> float:
    """CPU seconds used by this process and every descendant, live or already waited for.

    ``utime+stime+cutime+cstime`` of this process (waited children are in
    ``cutime``/``cstime``) plus ``utime+stime+cutime+cstime`` of each live descendant.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat_fields(entry.name)[1])
            except (OSError, IndexError, ValueError):
                continue
    me = os.getpid()
    mine = {me}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                changed = True
    total = 0
    for pid in mine:
        try:
            fields = _stat_fields(pid)
            total += sum(int(x) for x in fields[11:15])
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


class MachineLoad:
    """How busy the machine was since construction: every process, and processes other than the bench's."""

    def __init__(self):
        self._busy = cpu_times()[0]
        self._own = own_tree_cpu_seconds()
        self._wall = time.monotonic()

    def busy_cores(self) -> tuple[float, float]:
        """``(all, others)``: average busy cores since construction, all processes and non-bench processes."""
        elapsed = time.monotonic() - self._wall
        if elapsed <= 0:
            return 0.0, 0.0
        busy = (cpu_times()[0] - self._busy) / elapsed
        own = (own_tree_cpu_seconds() - self._own) / elapsed
        return busy, max(0.0, busy - own)


def socket_owners(pids: list[int], local_ports: set[int]) -> dict[int, int]:
    """``{local port: pid}`` for TCP sockets on ``local_ports`` held open by one of ``pids``.

    From ``/proc/net/tcp`` (port → socket inode) and ``/proc/<pid>/fd`` (inode → process); ports of
    sockets already closed, or of other processes, are absent.
    """
    inode_port: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    port = int(fields[1].rsplit(":", 1)[1], 16)
                    if port in local_ports:
                        inode_port[fields[9]] = port
        except OSError:
            continue
    owners: dict[int, int] = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    port = inode_port.get(target[8:-1])
                    if port is not None:
                        owners[port] = pid
        except OSError:
            continue
    return owners
