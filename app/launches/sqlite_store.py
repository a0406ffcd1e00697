"""The SQLite launch store (``launch_store.url`` ``sqlite:///path``, the default): one file on local disk.

Shared by the worker processes of one host (WAL, short transactions), it
survives restarts and purges expired records. Payloads are sealed by
:class:`~app.launches.store.Sealer`. The contract and its guarantees are
:class:`~app.launches.store.LaunchStore`'s; for several hosts use
:class:`~app.launches.redis_store.RedisLaunchStore`.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from .errors import BrowserMismatch, LaunchNotFound, StateNotRecognised, StoreUnavailable, TooManyPendingLaunches
from ..fhir.study_list import StudyList
from .state import ActiveLaunch, PendingLaunch, StoredLaunch, StudyListRef
from .store import (LAUNCH_ID_BYTES, MAX_LAUNCH_ID_LENGTH, MAX_PENDING_PER_BROWSER, MAX_PENDING_TOTAL,
                    PENDING_LIFETIME_SECONDS, Sealer, browser_matches as _browser_matches, digest as _digest)

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
CREATE TABLE IF NOT EXISTS study_lists (
    launch_id  TEXT PRIMARY KEY,
    version    TEXT NOT NULL,
    payload    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    launch_id TEXT PRIMARY KEY,
    owner     TEXT NOT NULL,
    expires   REAL NOT NULL
);
"""
_COLUMNS = "id, browser, version, expires, payload"
# a launch's list record goes with it: deleted with it, expired with it
_DROP_EXPIRED = ("DELETE FROM study_lists WHERE launch_id IN (SELECT id FROM launches WHERE expires < ?)",
                 "DELETE FROM launches WHERE expires < ?")


class SqliteLaunchStore:
    """SQLite-backed launch store; safe across threads and processes (WAL, short transactions).

    ``max_pending_per_browser`` / ``max_pending_total``: launches waiting for
    their callback that are accepted before :class:`TooManyPendingLaunches`.
    The file and its ``-wal`` / ``-shm`` companions are created 0600. A file
    that is not a usable SQLite database raises :class:`StoreUnavailable`
    (at start-up and at run time), naming the file.
    """

    def __init__(self, path: str | os.PathLike, secret_key: str, *, fallback_keys: Sequence[str] = (),
                 max_pending_per_browser: int = MAX_PENDING_PER_BROWSER, max_pending_total: int = MAX_PENDING_TOTAL):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._sealer = Sealer(secret_key, fallback_keys)
        self._local = threading.local()
        self.max_pending_per_browser = max_pending_per_browser
        self.max_pending_total = max_pending_total
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))  # SQLite gives -wal/-shm the file's mode
        os.chmod(self.path, 0o600)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            db.execute("SELECT COUNT(*) FROM launches").fetchone()
        for companion in (f"{self.path}-wal", f"{self.path}-shm"):
            if os.path.exists(companion):
                os.chmod(companion, 0o600)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = getattr(self._local, "db", None)
            if db is None or getattr(self._local, "pid", None) != os.getpid():  # never share across fork
                db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
                db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, consistent always
                self._local.db, self._local.pid = db, os.getpid()
            yield db
        except sqlite3.DatabaseError as exc:
            self._local.db = None
            raise StoreUnavailable(str(self.path), str(exc)[:200]) from None

    def describe(self) -> str:
        """The store's file."""
        return str(self.path)

    def _seal(self, state: PendingLaunch | ActiveLaunch) -> bytes:
        return self._sealer.seal(state)

    def _pending(self, row) -> StoredLaunch[PendingLaunch] | None:
        data, _ = self._sealer.open(row[4])
        return None if data is None else StoredLaunch(row[0], row[2], row[3], PendingLaunch.from_json(data))

    def _active(self, row) -> StoredLaunch[ActiveLaunch] | None:
        data, stale = self._sealer.open(row[4])
        if data is None:
            return None  # sealed under a key no longer configured: treat as gone
        if stale:  # sealed under a fallback key: re-seal under the current one, same version (same content)
            with self._connect() as db:
                db.execute("UPDATE launches SET payload = ? WHERE id = ? AND version = ?",
                           (self._sealer.reseal(row[4]), row[0], row[2]))
        return StoredLaunch(row[0], row[2], row[3], ActiveLaunch.from_json(data))

    def create_pending(self, browser_id: str, state: str, pending: PendingLaunch, now: float | None = None) -> str:
        """Store a pending launch bound to ``browser_id`` and OAuth ``state``; return its new launch id.

        Raises :class:`TooManyPendingLaunches`.
        """
        now = time.time() if now is None else now
        launch_id = secrets.token_urlsafe(LAUNCH_ID_BYTES)
        payload = self._seal(pending)
        browser = _digest(browser_id)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _DROP_EXPIRED:
                    db.execute(statement, (now,))
                self._check_pending_bounds(db, browser, now)
                db.execute(
                    "INSERT INTO launches (id, browser, state_hash, status, expires, payload) VALUES (?,?,?,?,?,?)",
                    (launch_id, browser, _digest(state), "pending", now + PENDING_LIFETIME_SECONDS,
                     payload))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return launch_id

    def _check_pending_bounds(self, db: sqlite3.Connection, browser: str, now: float) -> None:
        """Raise :class:`TooManyPendingLaunches` when this browser or the app has too many launches pending."""
        for where, args, limit in (("browser = ? AND ", (browser,), self.max_pending_per_browser),
                                   ("", (), self.max_pending_total)):
            count, oldest = db.execute(f"SELECT COUNT(*), MIN(expires) FROM launches WHERE {where}status = 'pending' "
                                       "AND state_hash IS NOT NULL", args).fetchone()
            if count >= limit:
                raise TooManyPendingLaunches(max(1, int(oldest - now) + 1))

    def check_pending(self, launch_id: str, browser_id: str | None,
                      now: float | None = None) -> StoredLaunch[PendingLaunch]:
        """The pending launch ``launch_id`` of this browser (its state left unused).

        Raises :class:`LaunchNotFound` (unknown, expired, already called back),
        :class:`BrowserMismatch` (another browser, or the cookie was blocked; the launch is discarded).
        """
        now = time.time() if now is None else now
        if not launch_id or len(launch_id) > MAX_LAUNCH_ID_LENGTH:
            raise LaunchNotFound()
        with self._connect() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM launches "
                             "WHERE id = ? AND status = 'pending' AND state_hash IS NOT NULL",
                             (launch_id,)).fetchone()
        launch = self._pending(row) if row is not None and row[3] >= now else None
        if launch is None:
            raise LaunchNotFound()
        if not _browser_matches(row[1], browser_id):
            self.discard(launch_id)
            raise BrowserMismatch(launch.state)
        return launch

    def claim(self, state: str, browser_id: str | None, now: float | None = None) -> StoredLaunch[PendingLaunch]:
        """Consume a pending ``state`` (single use, atomic) for this browser (RFC 6749 §10.12).

        Raises :class:`StateNotRecognised` (unknown, used, older than 10 minutes),
        :class:`BrowserMismatch` (another browser; the launch is discarded).
        """
        now = time.time() if now is None else now
        with self._connect() as db:
            row = db.execute(
                "UPDATE launches SET state_hash = NULL, version = version + 1 "
                f"WHERE state_hash = ? AND status = 'pending' RETURNING {_COLUMNS}",
                (_digest(state),)).fetchone()
        launch = self._pending(row) if row is not None and row[3] >= now else None
        if launch is None:
            raise StateNotRecognised()
        if not _browser_matches(row[1], browser_id):
            self.discard(launch.id)
            raise BrowserMismatch(launch.state)
        return launch

    def activate(self, launch_id: str, active: ActiveLaunch, lifetime_seconds: float, *,
                 new_browser_id: str | None = None, now: float | None = None) -> None:
        """Turn a claimed pending launch into an active one holding ``active`` for ``lifetime_seconds``.

        ``new_browser_id``: the browser's rotated binding id; every launch bound
        to the browser's old id is bound to the new one in the same transaction,
        so a binding id planted before the sign-in opens nothing afterwards
        (session fixation, OWASP ASVS V3.2.1).
        """
        now = time.time() if now is None else now
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if new_browser_id:
                    db.execute("UPDATE launches SET browser = ? WHERE browser = (SELECT browser FROM launches "
                               "WHERE id = ?)", (_digest(new_browser_id), launch_id))
                db.execute("UPDATE launches SET status = 'active', version = version + 1, expires = ?, payload = ? "
                           "WHERE id = ?", (now + lifetime_seconds, self._seal(active), launch_id))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def discard(self, launch_id: str) -> None:
        """Delete a launch (failed or refused callback)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM study_lists WHERE launch_id = ?", (launch_id,))
                db.execute("DELETE FROM launches WHERE id = ?", (launch_id,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def get_active(self, launch_id: str, browser_id: str | None,
                   now: float | None = None) -> StoredLaunch[ActiveLaunch]:
        """The active launch ``launch_id`` if it belongs to ``browser_id`` and has not expired.

        Raises :class:`LaunchNotFound` otherwise (which of the three is not revealed).
        """
        now = time.time() if now is None else now
        if not browser_id or not launch_id or len(launch_id) > MAX_LAUNCH_ID_LENGTH:
            raise LaunchNotFound()
        with self._connect() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM launches WHERE id = ? AND status = 'active'",
                             (launch_id,)).fetchone()
        if row is None or row[3] < now or not _browser_matches(row[1], browser_id):
            raise LaunchNotFound()
        launch = self._active(row)
        if launch is None:
            raise LaunchNotFound()
        return launch

    def reload(self, launch_id: str) -> StoredLaunch[ActiveLaunch] | None:
        """Re-read an active launch by id (after a lost compare-and-swap; the browser was checked before)."""
        with self._connect() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM launches WHERE id = ? AND status = 'active'",
                             (launch_id,)).fetchone()
        return None if row is None else self._active(row)

    def update(self, launch: StoredLaunch[ActiveLaunch], state: ActiveLaunch) -> StoredLaunch[ActiveLaunch] | None:
        """Replace ``launch``'s state with ``state`` if nobody changed it since it was read (compare-and-swap).

        Returns the stored launch at its new version, or ``None`` when another
        request (thread or worker) updated it first.
        """
        with self._connect() as db:
            cursor = db.execute("UPDATE launches SET payload = ?, version = version + 1 WHERE id = ? AND version = ?",
                                (self._seal(state), launch.id, launch.version))
        if cursor.rowcount == 1:
            return StoredLaunch(launch.id, launch.version + 1, launch.expires, state)
        return None

    def keep_list(self, launch: StoredLaunch[ActiveLaunch], state: ActiveLaunch,
                  study_list: StudyList) -> StoredLaunch[ActiveLaunch] | None:
        """Compare-and-swap ``launch`` to ``state`` and replace its list record with ``study_list`` (named by
        ``state.list_ref``), in one transaction; ``None`` when another request updated the launch first."""
        if state.list_ref is None:
            raise ValueError("keep_list needs a state naming its list")
        list_blob = self._sealer.seal_list(launch.id, state.list_ref, study_list)
        payload = self._seal(state)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                cursor = db.execute("UPDATE launches SET payload = ?, version = version + 1 "
                                    "WHERE id = ? AND version = ? AND status = 'active'",
                                    (payload, launch.id, launch.version))
                if cursor.rowcount == 1:
                    db.execute("INSERT OR REPLACE INTO study_lists (launch_id, version, payload) VALUES (?,?,?)",
                               (launch.id, state.list_ref.version, list_blob))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        if cursor.rowcount == 1:
            return StoredLaunch(launch.id, launch.version + 1, launch.expires, state)
        return None

    def get_study_list(self, launch_id: str, ref: StudyListRef, now: float | None = None) -> StudyList | None:
        """The list record of active, unexpired launch ``launch_id`` if it is ``ref``'s version, else ``None``."""
        now = time.time() if now is None else now
        with self._connect() as db:
            row = db.execute("SELECT s.payload FROM study_lists s JOIN launches l ON l.id = s.launch_id "
                             "WHERE s.launch_id = ? AND s.version = ? AND l.status = 'active' AND l.expires >= ?",
                             (launch_id, ref.version, now)).fetchone()
        if row is None:
            return None
        study_list, stale = self._sealer.open_list(row[0], launch_id, ref)
        if stale:  # sealed under a fallback key: re-seal under the current one
            with self._connect() as db:
                db.execute("UPDATE study_lists SET payload = ? WHERE launch_id = ? AND version = ?",
                           (self._sealer.reseal(row[0]), launch_id, ref.version))
        return study_list

    def purge_expired(self, now: float | None = None) -> int:
        """Delete expired launches and their list records (and list records whose launch is gone); how many launches."""
        now = time.time() if now is None else now
        with self._connect() as db:
            db.execute("DELETE FROM leases WHERE expires < ?", (time.time(),))
            db.execute(_DROP_EXPIRED[0], (now,))
            db.execute("DELETE FROM study_lists WHERE launch_id NOT IN (SELECT id FROM launches)")
            return db.execute(_DROP_EXPIRED[1], (now,)).rowcount

    def acquire_renewal(self, launch_id: str, seconds: float) -> str | None:
        """Take the renewal lease of ``launch_id`` for ``seconds``; an owner token, or ``None`` while it is held."""
        owner, now = secrets.token_urlsafe(16), time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM leases WHERE launch_id = ? AND expires < ?", (launch_id, now))
                taken = db.execute("INSERT OR IGNORE INTO leases (launch_id, owner, expires) VALUES (?,?,?)",
                                   (launch_id, owner, now + seconds)).rowcount == 1
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return owner if taken else None

    def release_renewal(self, launch_id: str, owner: str) -> None:
        """Give the lease back if ``owner`` still holds it."""
        with self._connect() as db:
            db.execute("DELETE FROM leases WHERE launch_id = ? AND owner = ?", (launch_id, owner))
