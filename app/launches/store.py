"""The launch store's contract (:class:`LaunchStore`) and what every implementation shares: sealing, digests, bounds.

A launch starts *pending* (:class:`~app.launches.state.PendingLaunch`: OAuth
``state`` and ``code_verifier`` kept server-side, never in the browser) and
becomes *active* after the callback (:class:`~app.launches.state.ActiveLaunch`).
The browser only holds an opaque binding id in the session cookie; the store
answers "this launch, for this browser" itself, comparing SHA-256 digests in
constant time (:func:`browser_matches`).

Two implementations keep the same guarantees (the same behavioural tests run
against both, ``tests/launches/test_store_contract.py``):

- :class:`~app.launches.sqlite_store.SqliteLaunchStore` (``sqlite:///path``, the
  default): one file on local disk, shared by the workers of one host (WAL);
- :class:`~app.launches.redis_store.RedisLaunchStore` (``redis://``, ``rediss://``):
  one Redis shared by app instances on several hosts; each operation is one
  Lua script, so atomic on the server.

A launch's study list is its own record, bound to the launch (sealed with the
launch id and the list's version inside, discarded and expiring with the launch):
the launch record that every request opens stays small whatever the history,
and the list is read only when a request needs it and this process has not
decoded it yet (:mod:`app.launches.list_cache`).

Payloads are JSON sealed with Fernet (AES-128-CBC + HMAC-SHA256) under a key
derived by HKDF-SHA256 from ``SECRET_KEY``; records sealed under one of
``SECRET_KEY_FALLBACKS`` are still opened (:class:`Sealer`, cryptography's
``MultiFernet``) and re-sealed under the current key when next written or read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Protocol, Sequence, runtime_checkable

import orjson

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..fhir.study_list import StudyList
from ..outbound.jsonsafe import paused_gc
from .state import ActiveLaunch, PendingLaunch, StoredLaunch, StudyListRef

PENDING_LIFETIME_SECONDS = 600  # an unused OAuth state expires after 10 minutes
LAUNCH_ID_BYTES = 24  # 32 URL-safe characters, 192 bits
MAX_LAUNCH_ID_LENGTH = 128
MAX_PENDING_PER_BROWSER = 20
MAX_PENDING_TOTAL = 5000
_HKDF_INFO = b"imaging-smart-app launch store v1"


def digest(value: str) -> str:
    """Hex SHA-256 of ``value`` (UTF-8): how the store keeps OAuth states and browser binding ids."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def browser_matches(browser_digest: str, browser_id: str | None) -> bool:
    """Constant-time check that ``browser_id`` (from the cookie) is the one the launch is bound to."""
    return bool(browser_id) and hmac.compare_digest(browser_digest, digest(browser_id))


def store_key(secret_key: str) -> bytes:
    """The 32-byte Fernet key (URL-safe base64) derived from one ``SECRET_KEY`` with HKDF-SHA256 (RFC 5869)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret_key.encode("utf-8"))
    return base64.urlsafe_b64encode(raw)


class Sealer:
    """Encrypts launch payloads under the current key; opens those sealed under the current or a previous key.

    ``secret_key``: the current ``SECRET_KEY``; ``fallbacks``: previous keys,
    newest first (``SECRET_KEY_FALLBACKS``). A payload opened with a fallback is
    reported ``stale`` so that the store re-seals it under the current key.
    """

    def __init__(self, secret_key: str, fallbacks: Sequence[str] = ()):
        self._current = Fernet(store_key(secret_key))
        self._all = MultiFernet([self._current, *(Fernet(store_key(k)) for k in fallbacks if k != secret_key)])

    def seal(self, state: PendingLaunch | ActiveLaunch) -> bytes:
        """The Fernet token of ``state``'s JSON, under the current key."""
        return self._current.encrypt(orjson.dumps(state.to_json()))

    def open(self, blob: bytes) -> tuple[dict | None, bool]:
        """``(data, stale)``: the JSON sealed in ``blob`` and whether it was under a previous key.

        ``(None, False)`` when no key opens it (written under a key since
        forgotten): the launch is then treated as gone. The JSON is the app's
        own (sealed, authenticated), so it is decoded with orjson directly.
        """
        try:
            return orjson.loads(self._current.decrypt(blob)), False
        except InvalidToken:
            pass
        try:
            return orjson.loads(self._all.decrypt(blob)), True
        except InvalidToken:
            return None, False

    def seal_list(self, launch_id: str, ref: StudyListRef, study_list: StudyList) -> bytes:
        """The Fernet token of ``study_list`` bound to ``launch_id`` and ``ref.version`` (both sealed inside)."""
        with paused_gc():  # many short-lived rows at once: no cycles, no collection needed
            document = orjson.dumps({"launch": launch_id, "version": ref.version, "list": study_list.to_json()})
        return self._current.encrypt(document)

    def open_list(self, blob: bytes, launch_id: str, ref: StudyListRef) -> tuple[StudyList | None, bool]:
        """``(study_list, stale)`` sealed in ``blob``; ``(None, False)`` when no key opens it or it was sealed for
        another launch or version (a record moved between launches opens nothing)."""
        with paused_gc():  # tens of thousands of objects at once, none in a cycle
            data, stale = self.open(blob)
            if not isinstance(data, dict) or data.get("launch") != launch_id or data.get("version") != ref.version:
                return None, False
            return StudyList.from_json(data["list"]), stale

    def reseal(self, blob: bytes) -> bytes:
        """``blob`` re-encrypted under the current key (``MultiFernet.rotate``); raises ``InvalidToken``."""
        return self._all.rotate(blob)


@runtime_checkable
class LaunchStore(Protocol):
    """What the views and :class:`~app.launches.context.LaunchContext` need of a launch store.

    Times (``now``, ``expires``) are Unix seconds; ``now`` defaults to the
    clock (tests pass it). Bounds: ``max_pending_per_browser`` (20) and
    ``max_pending_total`` (5,000) launches waiting for their callback.
    Every method raises :class:`~app.launches.errors.StoreUnavailable` when
    the backing store cannot be used (a damaged file, Redis unreachable).
    """

    max_pending_per_browser: int
    max_pending_total: int

    def create_pending(self, browser_id: str, state: str, pending: PendingLaunch, now: float | None = None) -> str:
        """Store a pending launch bound to ``browser_id`` and OAuth ``state`` for 10 minutes; return its launch id.

        Raises :class:`~app.launches.errors.TooManyPendingLaunches` (``retry_after``:
        seconds until the oldest pending launch of the full bucket expires).
        """

    def check_pending(self, launch_id: str, browser_id: str | None,
                      now: float | None = None) -> StoredLaunch[PendingLaunch]:
        """The pending launch ``launch_id`` of this browser (its state left unused).

        Raises ``LaunchNotFound`` (unknown, expired, already called back),
        ``BrowserMismatch`` (another browser, or the cookie was blocked; the launch is discarded).
        """

    def claim(self, state: str, browser_id: str | None, now: float | None = None) -> StoredLaunch[PendingLaunch]:
        """Consume a pending ``state`` (single use, atomic) for this browser (RFC 6749 §10.12).

        Raises ``StateNotRecognised`` (unknown, used, older than 10 minutes),
        ``BrowserMismatch`` (another browser; the launch is discarded).
        """

    def activate(self, launch_id: str, active: ActiveLaunch, lifetime_seconds: float, *,
                 new_browser_id: str | None = None, now: float | None = None) -> None:
        """Turn a claimed pending launch into an active one holding ``active`` for ``lifetime_seconds``.

        ``new_browser_id``: the browser's rotated binding id; every launch bound
        to the old id is rebound to it in the same atomic step (session
        fixation, OWASP ASVS V3.2.1).
        """

    def discard(self, launch_id: str) -> None:
        """Delete a launch (failed or refused callback)."""

    def get_active(self, launch_id: str, browser_id: str | None,
                   now: float | None = None) -> StoredLaunch[ActiveLaunch]:
        """The active launch ``launch_id`` if it belongs to ``browser_id`` and has not expired.

        Raises ``LaunchNotFound`` otherwise (which of the three is not revealed).
        """

    def reload(self, launch_id: str) -> StoredLaunch[ActiveLaunch] | None:
        """Re-read an active launch by id (after a lost compare-and-swap; the browser was checked before)."""

    def update(self, launch: StoredLaunch[ActiveLaunch], state: ActiveLaunch) -> StoredLaunch[ActiveLaunch] | None:
        """Replace ``launch``'s state if its version is unchanged since it was read (compare-and-swap).

        Returns the launch at its new version, or ``None`` when another request
        (thread, worker, instance) updated it first.
        """

    def keep_list(self, launch: StoredLaunch[ActiveLaunch], state: ActiveLaunch,
                  study_list: StudyList) -> StoredLaunch[ActiveLaunch] | None:
        """:meth:`update` to ``state`` (whose ``list_ref`` names ``study_list``) and write ``study_list`` as the
        launch's list record, in one atomic step (compare-and-swap on ``launch.version``).

        The list record replaces the launch's previous one, is sealed with the launch id and
        ``state.list_ref.version``, and is deleted and expires with the launch. Returns the launch at its
        new version, or ``None`` when another request updated it first (nothing is written then).
        """

    def get_study_list(self, launch_id: str, ref: StudyListRef, now: float | None = None) -> StudyList | None:
        """The list record of active launch ``launch_id`` when it is the one ``ref`` names, else ``None``
        (never kept, replaced since, the launch expired or discarded). The caller checked the browser
        (:meth:`get_active`)."""

    def purge_expired(self, now: float | None = None) -> int:
        """Delete expired launches (and their list records); returns how many launches."""

    def acquire_renewal(self, launch_id: str, seconds: float) -> str | None:
        """Take the launch's renewal lease for ``seconds`` (one token refresh at a time across every instance).

        Returns an owner token for :meth:`release_renewal`, or ``None`` while another request holds it.
        """

    def release_renewal(self, launch_id: str, owner: str) -> None:
        """Give the lease back (only if ``owner`` still holds it)."""

    def describe(self) -> str:
        """Where the store is, for messages (a path, or a Redis URL without credentials)."""
