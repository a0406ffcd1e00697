"""`make demo`: start the sandbox EHR (http://localhost:8800) and the app (http://127.0.0.1:8000), print where to go.

The two run as separate processes on different sites (localhost vs 127.0.0.1),
as an EHR and a SMART app do in a hospital; the app's registration for the
sandbox is the first entry of smart-launch.json. Ctrl-C stops both.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EHR_PORT = 8800
APP_PORT = 8000


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for(port: int, process: subprocess.Popen, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def main() -> int:
    """Start both servers, wait until they answer, print the URLs, and stop both on Ctrl-C."""
    for port, what in ((EHR_PORT, "sandbox EHR"), (APP_PORT, "app")):
        if not _port_free(port):
            print(f"make demo: port {port} (the {what}) is in use; stop whatever uses it and retry.", file=sys.stderr)
            return 1
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    python = sys.executable
    processes = [
        subprocess.Popen([python, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(EHR_PORT),
                          "--public-base-url", f"http://localhost:{EHR_PORT}",
                          "--app-origin", f"http://127.0.0.1:{APP_PORT}"], cwd=ROOT, env=env),
        subprocess.Popen([python, "-m", "app", "--host", "127.0.0.1", "--port", str(APP_PORT)], cwd=ROOT, env=env),
    ]
    try:
        for port, process in zip((EHR_PORT, APP_PORT), processes):
            if not _wait_for(port, process):
                print(f"make demo: the server on port {port} did not start; see its output above.", file=sys.stderr)
                return 1
        print("\n" + "=" * 72)
        print(f"  Sandbox EHR:  http://localhost:{EHR_PORT}/ehr   <- open this, pick a patient, Imaging tab")
        print(f"  App (standalone launch): http://127.0.0.1:{APP_PORT}/")
        print("  Ctrl-C stops both.")
        print("=" * 72 + "\n", flush=True)
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
