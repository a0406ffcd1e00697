"""The Redis launch store (``launch_store.url`` ``redis://`` / ``rediss://``): one store for app instances on several hosts.

Every operation that reads and writes is one Lua script (``EVALSHA``), so it
runs atomically on the Redis server: a state is claimed once however many
instances race for it, a compare-and-swap sees the version it compares, the
pending bounds are counted and enforced in the same step as the insert, and
the browser-binding rotation rebinds all of a browser's launches at once.
Reads are one ``HMGET``. One round trip per operation.

Keys, under ``key_prefix`` ``P`` (default ``imaging-app:``), each with a TTL:

========================== ========================================================================
``P launch:<id>``          hash: ``browser`` (SHA-256 of the binding id), ``status`` (``pending`` |
                           ``active``), ``state`` (SHA-256 of the OAuth state while unused, else
                           empty), ``version`` (compare-and-swap), ``expires`` (Unix s), ``payload``
                           (Fernet token); TTL = the launch's lifetime
``P state:<sha256>``       the launch id of an unused OAuth state (TTL 10 minutes)
``P browser:<sha256>``     set: the launch ids bound to one browser (the per-browser index)
``P pending``              sorted set: launch id -> expiry, every launch awaiting its callback
``P pending:<sha256>``     the same for one browser (the bound of 20)
``P expiry``               sorted set: launch id -> expiry, every launch (purge)
``P lease:<id>``           the owner of the launch's token-renewal lease (``SET NX PX``)
``P list:<id>``            hash: ``version`` (the list's random id), ``payload`` (Fernet token of the list,
                           bound to the launch id and version); the launch's remaining TTL, deleted with it
========================== ========================================================================

Redis's own TTL removes what nobody purges; ``expires`` is still checked
against ``now`` on every read (the TTL is relative, so tests may pass their
own ``now``). All keys of one store are touched by one script, so this is for
one Redis server (with replicas or Sentinel), not Redis Cluster.
Connection failures and server errors raise :class:`StoreUnavailable`
(``path``: the URL without credentials).
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Any, Callable, Sequence, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis

from .errors import BrowserMismatch, LaunchNotFound, StateNotRecognised, StoreUnavailable, TooManyPendingLaunches
from ..fhir.study_list import StudyList
from .state import ActiveLaunch, PendingLaunch, StoredLaunch, StudyListRef
from .store import (LAUNCH_ID_BYTES, MAX_LAUNCH_ID_LENGTH, MAX_PENDING_PER_BROWSER, MAX_PENDING_TOTAL,
                    PENDING_LIFETIME_SECONDS, Sealer, browser_matches, digest)

DEFAULT_KEY_PREFIX = "imaging-app:"
SOCKET_TIMEOUT_SECONDS = 2.0  # a request waits at most this long for Redis before the 503 page
PURGE_BATCH = 200  # expired launches deleted per create_pending (all of them by purge_expired)

T = TypeVar("T")

# Shared Lua: delete one launch and every index entry of it. ARGV-independent; ``p`` is the key prefix.
_PURGE_ONE = """
local function purge_one(p, id)
  local k = p .. 'launch:' .. id
  local r = redis.call('HMGET', k, 'browser', 'state')
  if r[1] then
    redis.call('SREM', p .. 'browser:' .. r[1], id)
    redis.call('ZREM', p .. 'pending:' .. r[1], id)
  end
  if r[2] and r[2] ~= '' and redis.call('GET', p .. 'state:' .. r[2]) == id then
    redis.call('DEL', p .. 'state:' .. r[2])
  end
  redis.call('DEL', k, p .. 'list:' .. id)
  redis.call('ZREM', p .. 'pending', id)
  return redis.call('ZREM', p .. 'expiry', id)
end
local function extend(k, ttl)
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
"""

# ARGV: prefix, id, browser digest, state digest, now, expires, payload, per-browser limit, total limit, ttl ms
# -> {1} stored | {0, oldest expiry} a bound is reached | {-1} the state is already pending
_CREATE = _PURGE_ONE + """
local p, id, b, s, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ttl = tonumber(ARGV[10])
for _, old in ipairs(redis.call('ZRANGEBYSCORE', p .. 'expiry', '-inf', '(' .. now, 'LIMIT', 0, %d)) do
  purge_one(p, old)
end
redis.call('ZREMRANGEBYSCORE', p .. 'pending', '-inf', '(' .. now)
redis.call('ZREMRANGEBYSCORE', p .. 'pending:' .. b, '-inf', '(' .. now)
for _, bound in ipairs({{p .. 'pending:' .. b, ARGV[8]}, {p .. 'pending', ARGV[9]}}) do
  if redis.call('ZCARD', bound[1]) >= tonumber(bound[2]) then
    return {0, redis.call('ZRANGE', bound[1], 0, 0, 'WITHSCORES')[2]}
  end
end
if redis.call('SET', p .. 'state:' .. s, id, 'NX', 'PX', ttl) == false then return {-1} end
local k = p .. 'launch:' .. id
redis.call('HSET', k, 'browser', b, 'status', 'pending', 'state', s, 'version', 0, 'expires', ARGV[6],
           'payload', ARGV[7])
redis.call('PEXPIRE', k, ttl)
redis.call('SADD', p .. 'browser:' .. b, id)
extend(p .. 'browser:' .. b, ttl)
redis.call('ZADD', p .. 'pending', ARGV[6], id)
redis.call('ZADD', p .. 'pending:' .. b, ARGV[6], id)
extend(p .. 'pending:' .. b, ttl)
redis.call('ZADD', p .. 'expiry', ARGV[6], id)
return {1}
""" % PURGE_BATCH

# ARGV: prefix, state digest -> {id, browser, version, expires, payload} | nil. The state is gone afterwards.
_CLAIM = """
local p, s = ARGV[1], ARGV[2]
local id = redis.call('GET', p .. 'state:' .. s)
if not id then return false end
redis.call('DEL', p .. 'state:' .. s)
local k = p .. 'launch:' .. id
local r = redis.call('HMGET', k, 'browser', 'status', 'state', 'expires', 'payload')
if not r[1] or r[2] ~= 'pending' or r[3] ~= s then return false end
redis.call('HSET', k, 'state', '')
local v = redis.call('HINCRBY', k, 'version', 1)
redis.call('ZREM', p .. 'pending', id)
redis.call('ZREM', p .. 'pending:' .. r[1], id)
return {id, r[1], v, r[4], r[5]}
"""

# ARGV: prefix, id, new browser digest ('' = keep), expires, payload, ttl ms -> 1 | 0 (no such launch)
_ACTIVATE = _PURGE_ONE + """
local p, id, nb = ARGV[1], ARGV[2], ARGV[3]
local ttl = tonumber(ARGV[6])
local k = p .. 'launch:' .. id
local ob = redis.call('HGET', k, 'browser')
if not ob then return 0 end
if nb ~= '' and nb ~= ob then
  local keep = redis.call('PTTL', p .. 'browser:' .. ob)
  for _, other in ipairs(redis.call('SMEMBERS', p .. 'browser:' .. ob)) do
    local ok = p .. 'launch:' .. other
    if redis.call('EXISTS', ok) == 1 then
      redis.call('HSET', ok, 'browser', nb)
      redis.call('SADD', p .. 'browser:' .. nb, other)
      local score = redis.call('ZSCORE', p .. 'pending:' .. ob, other)
      if score then redis.call('ZADD', p .. 'pending:' .. nb, score, other) end
    end
  end
  redis.call('DEL', p .. 'browser:' .. ob, p .. 'pending:' .. ob)
  if keep > 0 then extend(p .. 'browser:' .. nb, keep) end
  if redis.call('EXISTS', p .. 'pending:' .. nb) == 1 then extend(p .. 'pending:' .. nb, PENDING_TTL) end
end
redis.call('HSET', k, 'status', 'active', 'expires', ARGV[4], 'payload', ARGV[5])
redis.call('HINCRBY', k, 'version', 1)
redis.call('PEXPIRE', k, ttl)
redis.call('SADD', p .. 'browser:' .. redis.call('HGET', k, 'browser'), id)
extend(p .. 'browser:' .. redis.call('HGET', k, 'browser'), ttl)
redis.call('ZADD', p .. 'expiry', ARGV[4], id)
return 1
""".replace("PENDING_TTL", str(PENDING_LIFETIME_SECONDS * 1000))

# ARGV: prefix, id, expected version, payload -> new version | nil (changed meanwhile, or not active)
_UPDATE = """
local k = ARGV[1] .. 'launch:' .. ARGV[2]
local r = redis.call('HMGET', k, 'version', 'status')
if r[1] ~= ARGV[3] or r[2] ~= 'active' then return false end
redis.call('HSET', k, 'payload', ARGV[4])
return redis.call('HINCRBY', k, 'version', 1)
"""

# ARGV: prefix, id, expected version, payload, list version, list payload -> new version | nil.
# The launch and its list record change together; the list key lives as long as the launch key.
_KEEP_LIST = """
local k = ARGV[1] .. 'launch:' .. ARGV[2]
local r = redis.call('HMGET', k, 'version', 'status')
if r[1] ~= ARGV[3] or r[2] ~= 'active' then return false end
local ttl = redis.call('PTTL', k)
if ttl <= 0 then return false end
redis.call('HSET', k, 'payload', ARGV[4])
local lk = ARGV[1] .. 'list:' .. ARGV[2]
redis.call('DEL', lk)
redis.call('HSET', lk, 'version', ARGV[5], 'payload', ARGV[6])
redis.call('PEXPIRE', lk, ttl)
return redis.call('HINCRBY', k, 'version', 1)
"""

# ARGV: prefix, id, list version, payload -> 1 | 0. A list re-sealed under the current key.
_RESEAL_LIST = """
local lk = ARGV[1] .. 'list:' .. ARGV[2]
if redis.call('HGET', lk, 'version') ~= ARGV[3] then return 0 end
redis.call('HSET', lk, 'payload', ARGV[4])
return 1
"""

# ARGV: prefix, id, expected version, payload -> 1 | 0. Same content under the current key: version unchanged.
_RESEAL = """
local k = ARGV[1] .. 'launch:' .. ARGV[2]
if redis.call('HGET', k, 'version') ~= ARGV[3] then return 0 end
redis.call('HSET', k, 'payload', ARGV[4])
return 1
"""

# ARGV: prefix, id, owner -> 1 | 0
_RELEASE = """
local k = ARGV[1] .. 'lease:' .. ARGV[2]
if redis.call('GET', k) == ARGV[3] then return redis.call('DEL', k) end
return 0
"""

# ARGV: prefix, id -> 1 | 0
_DISCARD = _PURGE_ONE + "return purge_one(ARGV[1], ARGV[2])"

# ARGV: prefix, now -> how many launches were deleted
_PURGE = _PURGE_ONE + """
local p, now, n = ARGV[1], ARGV[2], 0
for _, old in ipairs(redis.call('ZRANGEBYSCORE', p .. 'expiry', '-inf', '(' .. now)) do
  n = n + purge_one(p, old)
end
redis.call('ZREMRANGEBYSCORE', p .. 'pending', '-inf', '(' .. now)
return n
"""


def public_url(url: str) -> str:
    """``url`` without user name or password (for messages and logs)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class RedisLaunchStore:
    """Launch store in one Redis server, shared by every app instance that uses the same URL and key prefix.

    ``url``: ``redis://host:port/db`` or ``rediss://`` (TLS, system CAs);
    ``password``: from the environment variable named by ``launch_store.password_env``
    (never in the URL); ``key_prefix``: namespace of this app's keys.
    ``client``: an existing ``redis.Redis`` (tests). Raises :class:`StoreUnavailable`
    when Redis cannot be reached or refuses the password (checked at start-up with ``PING``).
    """

    def __init__(self, url: str, secret_key: str, *, fallback_keys: Sequence[str] = (), password: str | None = None,
                 key_prefix: str = DEFAULT_KEY_PREFIX, client: redis.Redis | None = None,
                 max_pending_per_browser: int = MAX_PENDING_PER_BROWSER, max_pending_total: int = MAX_PENDING_TOTAL):
        self.url = public_url(url)
        self.key_prefix = key_prefix
        self.max_pending_per_browser = max_pending_per_browser
        self.max_pending_total = max_pending_total
        self._sealer = Sealer(secret_key, fallback_keys)
        self._redis = client or redis.Redis.from_url(
            url, password=password, socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS, health_check_interval=30)
        self._scripts = {name: self._redis.register_script(source) for name, source in (
            ("create", _CREATE), ("claim", _CLAIM), ("activate", _ACTIVATE), ("update", _UPDATE),
            ("keep_list", _KEEP_LIST), ("reseal_list", _RESEAL_LIST),
            ("reseal", _RESEAL), ("release", _RELEASE), ("discard", _DISCARD), ("purge", _PURGE))}
        self._call(self._redis.ping)

    def describe(self) -> str:
        """The Redis URL without credentials, and the key prefix."""
        return f"{self.url} (keys {self.key_prefix}*)"

    def _call(self, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return operation(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreUnavailable(self.describe(), f"{type(exc).__name__}: {str(exc)[:200]}") from None

    def _run(self, name: str, *args: Any) -> Any:
        return self._call(self._scripts[name], keys=[], args=[self.key_prefix, *args])

    def _read(self, launch_id: str) -> list:
        return self._call(self._redis.hmget, f"{self.key_prefix}launch:{launch_id}",
                          "browser", "status", "state", "version", "expires", "payload")

    @staticmethod
    def _ttl_ms(expires: float, now: float) -> int:
        return max(1000, math.ceil((expires - now) * 1000))

    def create_pending(self, browser_id: str, state: str, pending: PendingLaunch, now: float | None = None) -> str:
        """Store a pending launch bound to ``browser_id`` and OAuth ``state``; return its new launch id.

        Raises :class:`TooManyPendingLaunches`, :class:`StoreUnavailable`.
        """
        now = time.time() if now is None else now
        launch_id = secrets.token_urlsafe(LAUNCH_ID_BYTES)
        expires = now + PENDING_LIFETIME_SECONDS
        answer = self._run("create", launch_id, digest(browser_id), digest(state), repr(now), repr(expires),
                           self._sealer.seal(pending), self.max_pending_per_browser, self.max_pending_total,
                           self._ttl_ms(expires, now))
        if answer[0] == 0:
            raise TooManyPendingLaunches(max(1, int(float(answer[1]) - now) + 1))
        if answer[0] == -1:
            raise StoreUnavailable(self.describe(), "OAuth state already pending")  # 256-bit states: never
        return launch_id

    def check_pending(self, launch_id: str, browser_id: str | None,
                      now: float | None = None) -> StoredLaunch[PendingLaunch]:
        """The pending launch ``launch_id`` of this browser (its state left unused).

        Raises :class:`LaunchNotFound`, :class:`BrowserMismatch` (the launch is discarded).
        """
        now = time.time() if now is None else now
        if not launch_id or len(launch_id) > MAX_LAUNCH_ID_LENGTH:
            raise LaunchNotFound()
        browser, status, state, version, expires, payload = self._read(launch_id)
        if status != b"pending" or not state or float(expires) < now:
            raise LaunchNotFound()
        data, _ = self._sealer.open(payload)
        if data is None:
            raise LaunchNotFound()
        launch = StoredLaunch(launch_id, int(version), float(expires), PendingLaunch.from_json(data))
        if not browser_matches(browser.decode(), browser_id):
            self.discard(launch_id)
            raise BrowserMismatch(launch.state)
        return launch

    def claim(self, state: str, browser_id: str | None, now: float | None = None) -> StoredLaunch[PendingLaunch]:
        """Consume a pending ``state`` (single use: one script ``GET`` + ``DEL``s it) for this browser (RFC 6749 §10.12).

        Raises :class:`StateNotRecognised`, :class:`BrowserMismatch` (the launch is discarded).
        """
        now = time.time() if now is None else now
        if not state:
            raise StateNotRecognised()
        row = self._run("claim", digest(state))
        if row is None or float(row[3]) < now:
            raise StateNotRecognised()
        data, _ = self._sealer.open(row[4])
        if data is None:
            raise StateNotRecognised()
        launch_id = row[0].decode()
        launch = StoredLaunch(launch_id, int(row[2]), float(row[3]), PendingLaunch.from_json(data))
        if not browser_matches(row[1].decode(), browser_id):
            self.discard(launch_id)
            raise BrowserMismatch(launch.state)
        return launch

    def activate(self, launch_id: str, active: ActiveLaunch, lifetime_seconds: float, *,
                 new_browser_id: str | None = None, now: float | None = None) -> None:
        """Turn a claimed pending launch into an active one; rebind every launch of the browser to ``new_browser_id``."""
        now = time.time() if now is None else now
        expires = now + lifetime_seconds
        self._run("activate", launch_id, digest(new_browser_id) if new_browser_id else "", repr(expires),
                  self._sealer.seal(active), self._ttl_ms(expires, now))

    def discard(self, launch_id: str) -> None:
        """Delete a launch and its index entries."""
        self._run("discard", launch_id)

    def _active(self, launch_id: str, row: list) -> StoredLaunch[ActiveLaunch] | None:
        _, status, _, version, expires, payload = row
        if status != b"active":
            return None
        data, stale = self._sealer.open(payload)
        if data is None:
            return None
        if stale:
            self._run("reseal", launch_id, version, self._sealer.reseal(payload))
        return StoredLaunch(launch_id, int(version), float(expires), ActiveLaunch.from_json(data))

    def get_active(self, launch_id: str, browser_id: str | None,
                   now: float | None = None) -> StoredLaunch[ActiveLaunch]:
        """The active launch ``launch_id`` if it belongs to ``browser_id`` and has not expired; else :class:`LaunchNotFound`."""
        now = time.time() if now is None else now
        if not browser_id or not launch_id or len(launch_id) > MAX_LAUNCH_ID_LENGTH:
            raise LaunchNotFound()
        row = self._read(launch_id)
        if row[1] != b"active" or float(row[4]) < now or not browser_matches(row[0].decode(), browser_id):
            raise LaunchNotFound()
        launch = self._active(launch_id, row)
        if launch is None:
            raise LaunchNotFound()
        return launch

    def reload(self, launch_id: str) -> StoredLaunch[ActiveLaunch] | None:
        """Re-read an active launch by id (after a lost compare-and-swap; the browser was checked before)."""
        return self._active(launch_id, self._read(launch_id))

    def update(self, launch: StoredLaunch[ActiveLaunch], state: ActiveLaunch) -> StoredLaunch[ActiveLaunch] | None:
        """Compare-and-swap on ``version``: the launch at its new version, or ``None`` when another request won."""
        version = self._run("update", launch.id, launch.version, self._sealer.seal(state))
        if version is None:
            return None
        return StoredLaunch(launch.id, int(version), launch.expires, state)

    def keep_list(self, launch: StoredLaunch[ActiveLaunch], state: ActiveLaunch,
                  study_list: StudyList) -> StoredLaunch[ActiveLaunch] | None:
        """Compare-and-swap ``launch`` to ``state`` and replace its list record (``P list:<id>``, the launch's
        remaining TTL) in one script; ``None`` when another request updated the launch first."""
        if state.list_ref is None:
            raise ValueError("keep_list needs a state naming its list")
        version = self._run("keep_list", launch.id, launch.version, self._sealer.seal(state), state.list_ref.version,
                            self._sealer.seal_list(launch.id, state.list_ref, study_list))
        if version is None:
            return None
        return StoredLaunch(launch.id, int(version), launch.expires, state)

    def get_study_list(self, launch_id: str, ref: StudyListRef, now: float | None = None) -> StudyList | None:
        """The list record of active, unexpired launch ``launch_id`` if it is ``ref``'s version (one round trip:
        both hashes in one pipeline), else ``None``."""
        now = time.time() if now is None else now
        pipe = self._redis.pipeline(transaction=False)
        pipe.hmget(f"{self.key_prefix}launch:{launch_id}", "status", "expires")
        pipe.hmget(f"{self.key_prefix}list:{launch_id}", "version", "payload")
        (status, expires), (version, payload) = self._call(pipe.execute)
        if status != b"active" or expires is None or float(expires) < now or payload is None \
                or version != ref.version.encode():
            return None
        study_list, stale = self._sealer.open_list(payload, launch_id, ref)
        if stale:
            self._run("reseal_list", launch_id, ref.version, self._sealer.reseal(payload))
        return study_list

    def purge_expired(self, now: float | None = None) -> int:
        """Delete launches whose expiry has passed (Redis's TTL also drops them); returns how many."""
        now = time.time() if now is None else now
        return int(self._run("purge", repr(now)))

    def acquire_renewal(self, launch_id: str, seconds: float) -> str | None:
        """Take the renewal lease of ``launch_id`` (``SET NX PX``); an owner token, or ``None`` while it is held."""
        owner = secrets.token_urlsafe(16)
        taken = self._call(self._redis.set, f"{self.key_prefix}lease:{launch_id}", owner, nx=True,
                           px=max(1, int(seconds * 1000)))
        return owner if taken else None

    def release_renewal(self, launch_id: str, owner: str) -> None:
        """Give the lease back if ``owner`` still holds it (compare-and-delete in one script)."""
        self._run("release", launch_id, owner)
