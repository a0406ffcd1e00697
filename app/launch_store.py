"""Server-side launch contexts: one record per launch, in SQLite, encrypted at rest.

A launch starts *pending* (OAuth ``state`` and ``code_verifier`` kept here,
never in the browser) and becomes *active* after the callback (tokens, patient,
granted scope, expiry, cached study list). The browser only holds an opaque
binding id in the session cookie; a record answers only to the browser that
started it. The store survives restarts (file-backed), is shared by worker
processes, and purges expired records.

Record payloads are JSON encrypted with Fernet (AES-128-CBC + HMAC-SHA256)
under a key derived by HKDF-SHA256 from the app's ``SECRET_KEY``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PENDING_LIFETIME_SECONDS = 600  # an unused OAuth state expires after 10 minutes
LAUNCH_ID_BYTES = 24  # 32 URL-safe characters, 192 bits

_SCHEMA = """
CREATE TABLE IF NOT EXISTS launches (
    id         TEXT PRIMARY KEY,
    browser    TEXT NOT NULL,
    state_hash TEXT UNIQUE,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'active')),
    version    INTEGER NOT NULL DEFAULT 0,
    expires    REAL NOT NULL,
    payload    BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS launches_expires ON launches (expires);
"""


@dataclass
class LaunchRecord:
    """One launch: ``id`` (opaque, in page URLs), ``status``, ``version`` (for compare-and-swap), ``data`` (decrypted dict)."""

    id: str
    status: str
    version: int
    expires: float
    data: dict[str, Any]


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class LaunchStore:
    """SQLite-backed launch store; safe across threads and processes (WAL, short transactions)."""

    def __init__(self, path: str | os.PathLike, secret_key: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"imaging-smart-app launch store v1").derive(secret_key.encode("utf-8"))
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self._local = threading.local()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
        os.chmod(self.path, 0o600)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():  # never share across fork
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, consistent always
            self._local.db, self._local.pid = db, os.getpid()
        yield db

    def _seal(self, data: dict) -> bytes:
        return self._fernet.encrypt(json.dumps(data, separators=(",", ":")).encode("utf-8"))

    def _open(self, blob: bytes) -> dict | None:
        try:
            return json.loads(self._fernet.decrypt(blob))
        except InvalidToken:
            return None  # written under another SECRET_KEY: treat as gone

    def create_pending(self, browser_id: str, state: str, data: dict, now: float | None = None) -> str:
        """Store a pending launch bound to ``browser_id`` and ``state``; return its new launch id."""
        now = time.time() if now is None else now
        launch_id = secrets.token_urlsafe(LAUNCH_ID_BYTES)
        payload = self._seal(data)
        with self._connect() as db:
            db.execute("BEGIN")
            try:
                db.execute("DELETE FROM launches WHERE expires < ?", (now,))
                db.execute(
                    "INSERT INTO launches (id, browser, state_hash, status, expires, payload) VALUES (?,?,?,?,?,?)",
                    (launch_id, _digest(browser_id), _digest(state), "pending", now + PENDING_LIFETIME_SECONDS,
                     payload))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return launch_id

    def claim_state(self, state: str, now: float | None = None) -> tuple[LaunchRecord, str] | None:
        """Consume a pending ``state`` (single use). Returns ``(record, browser_digest)`` or ``None``.

        ``None`` when the state is unknown, already used, or older than 10 minutes.
        """
        now = time.time() if now is None else now
        with self._connect() as db:
            row = db.execute(
                "UPDATE launches SET state_hash = NULL, version = version + 1 "
                "WHERE state_hash = ? AND status = 'pending' "
                "RETURNING id, browser, status, version, expires, payload",
                (_digest(state),)).fetchone()
        if row is None or row[4] < now:
            return None
        data = self._open(row[5])
        if data is None:
            return None
        return LaunchRecord(row[0], row[2], row[3], row[4], data), row[1]

    def get_pending(self, launch_id: str, now: float | None = None) -> tuple[LaunchRecord, str] | None:
        """A pending, unexpired launch by id: ``(record, browser_digest)``, else ``None`` (state untouched)."""
        now = time.time() if now is None else now
        with self._connect() as db:
            row = db.execute("SELECT id, browser, status, version, expires, payload FROM launches "
                             "WHERE id = ? AND status = 'pending' AND state_hash IS NOT NULL",
                             (launch_id,)).fetchone()
        if row is None or row[4] < now:
            return None
        data = self._open(row[5])
        return None if data is None else (LaunchRecord(row[0], row[2], row[3], row[4], data), row[1])

    @staticmethod
    def browser_matches(browser_digest: str, browser_id: str | None) -> bool:
        """Constant-time check that ``browser_id`` (from the cookie) is the one that started the launch."""
        return bool(browser_id) and hmac.compare_digest(browser_digest, _digest(browser_id))

    def activate(self, launch_id: str, data: dict, lifetime_seconds: float, now: float | None = None) -> None:
        """Turn a claimed pending launch into an active one holding ``data`` for ``lifetime_seconds``."""
        now = time.time() if now is None else now
        with self._connect() as db:
            db.execute("UPDATE launches SET status = 'active', version = version + 1, expires = ?, payload = ? "
                       "WHERE id = ?", (now + lifetime_seconds, self._seal(data), launch_id))

    def discard(self, launch_id: str) -> None:
        """Delete a launch (failed callback, logout)."""
        with self._connect() as db:
            db.execute("DELETE FROM launches WHERE id = ?", (launch_id,))

    def get_active(self, launch_id: str, browser_id: str | None, now: float | None = None) -> LaunchRecord | None:
        """The active launch ``launch_id`` if it belongs to ``browser_id`` and has not expired, else ``None``."""
        now = time.time() if now is None else now
        if not browser_id or not launch_id or len(launch_id) > 128:
            return None
        with self._connect() as db:
            row = db.execute("SELECT id, browser, status, version, expires, payload FROM launches "
                             "WHERE id = ? AND status = 'active'", (launch_id,)).fetchone()
        if row is None or row[4] < now or not self.browser_matches(row[1], browser_id):
            return None
        data = self._open(row[5])
        return None if data is None else LaunchRecord(row[0], row[2], row[3], row[4], data)

    def reload(self, launch_id: str) -> LaunchRecord | None:
        """Re-read an active launch by id (after a lost compare-and-swap); browser already checked."""
        with self._connect() as db:
            row = db.execute("SELECT id, browser, status, version, expires, payload FROM launches "
                             "WHERE id = ? AND status = 'active'", (launch_id,)).fetchone()
        data = None if row is None else self._open(row[5])
        return None if data is None else LaunchRecord(row[0], row[2], row[3], row[4], data)

    def update(self, record: LaunchRecord) -> bool:
        """Write ``record.data`` back if nobody changed it since it was read (compare-and-swap on version).

        Returns ``False`` when another request (thread or worker) updated it first; ``record.version`` is bumped on success.
        """
        with self._connect() as db:
            cursor = db.execute("UPDATE launches SET payload = ?, version = version + 1 "
                                "WHERE id = ? AND version = ?", (self._seal(record.data), record.id, record.version))
        if cursor.rowcount == 1:
            record.version += 1
            return True
        return False

    def purge_expired(self, now: float | None = None) -> int:
        """Delete expired launches; returns how many."""
        now = time.time() if now is None else now
        with self._connect() as db:
            return db.execute("DELETE FROM launches WHERE expires < ?", (now,)).rowcount
