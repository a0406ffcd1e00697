"""One behavioural suite for every launch store: each test runs against SQLite and against a live Redis.

What a store promises (:class:`app.launches.store.LaunchStore`): single-use
state claim, compare-and-swap, expiry, the browser binding answered by the
store, its rotation at activation, bounded pending launches, payloads sealed
(and re-sealed after a key rotation), ``StoreUnavailable`` when unusable.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest
import redis

from app.launches.errors import (BrowserMismatch, LaunchNotFound, StateNotRecognised, StoreUnavailable,
                                 TooManyPendingLaunches)
from app.launches.redis_store import RedisLaunchStore
from app.launches.sqlite_store import SqliteLaunchStore
from app.fhir.imaging import StudySummary
from app.fhir.study_list import StudyList
from app.launches.state import ActiveLaunch, PendingLaunch, StudyListRef
from app.launches.store import LaunchStore
from app.smart.tokens import TokenGrant
from tests.launches.conftest import SECRET, make_store
from tests.launches.redis_server import running_redis

NOW = 1_000_000.0
ISS = "https://ehr.example.org/fhir"
LIFETIME = 8 * 3600


def pending(n: int = 1) -> PendingLaunch:
    return PendingLaunch(iss=ISS, launch=f"L-{n}", code_verifier=f"verifier-{n}-" + "v" * 40, scope="launch",
                         token_endpoint="https://ehr.example.org/token", authorize_url="https://ehr.example.org/a",
                         redirect_uri="https://app.example.net/callback", issuer="https://ehr.example.org",
                         issuer_required=True)


def active(token: str = "tok-secret-1", patient: str = "pt-secret-1001") -> ActiveLaunch:
    return ActiveLaunch(iss=ISS, launch="L-1", patient=patient, token_endpoint="https://ehr.example.org/token",
                        grant=TokenGrant(access_token=token, scope="launch patient/ImagingStudy.rs",
                                         expires_at=NOW + 3600, refresh_token="rt-secret-1", patient=patient))


def activated(store: LaunchStore, browser: str = "browser-A", state: str = "state-1", *, token: str = "tok-secret-1",
              new_browser: str | None = None) -> str:
    launch_id = store.create_pending(browser, state, pending(), now=NOW)
    store.claim(state, browser, now=NOW)
    store.activate(launch_id, active(token), LIFETIME, new_browser_id=new_browser, now=NOW)
    return launch_id


def raw_bytes(store) -> bytes:
    """Everything the store holds, as bytes: the SQLite file and its WAL, or every value under the Redis prefix."""
    if isinstance(store, SqliteLaunchStore):
        return b"".join(p.read_bytes() for p in store.path.parent.glob(store.path.name + "*"))
    client = store._redis
    out = []
    for key in client.scan_iter(match=f"{store.key_prefix}*"):
        out.append(key)
        kind = client.type(key)
        if kind == b"hash":
            out.extend(b"%s=%s" % kv for kv in client.hgetall(key).items())
        elif kind == b"string":
            out.append(client.get(key))
        elif kind == b"set":
            out.extend(client.smembers(key))
        elif kind == b"zset":
            out.extend(m for m, _ in client.zrange(key, 0, -1, withscores=True))
    return b"\n".join(out)


def test_both_implementations_are_launch_stores(store):
    assert isinstance(store, LaunchStore)


# -- pending launches, check and claim ---------------------------------------------------------------
def test_a_pending_launch_is_checked_for_its_browser_and_left_unused(store):
    launch_id = store.create_pending("browser-A", "state-1", pending(), now=NOW)
    assert len(launch_id) == 32
    checked = store.check_pending(launch_id, "browser-A", now=NOW + 1)
    assert (checked.id, checked.version, checked.expires, checked.state) == (launch_id, 0, NOW + 600, pending())
    claimed = store.claim("state-1", "browser-A", now=NOW + 2)
    assert (claimed.id, claimed.version, claimed.state) == (launch_id, 1, pending())


def test_check_pending_from_another_browser_discards_the_launch(store):
    launch_id = store.create_pending("browser-A", "state-1", pending(), now=NOW)
    with pytest.raises(BrowserMismatch) as raised:
        store.check_pending(launch_id, "browser-B", now=NOW)
    assert raised.value.pending == pending()
    with pytest.raises(LaunchNotFound):
        store.check_pending(launch_id, "browser-A", now=NOW)
    with pytest.raises(StateNotRecognised):
        store.claim("state-1", "browser-A", now=NOW)


@pytest.mark.parametrize("launch_id", ["", "x" * 129, "no-such-launch"])
def test_check_pending_of_an_unknown_id_is_not_found(store, launch_id):
    store.create_pending("browser-A", "state-1", pending(), now=NOW)
    with pytest.raises(LaunchNotFound):
        store.check_pending(launch_id, "browser-A", now=NOW)


def test_a_pending_launch_expires_after_ten_minutes(store):
    launch_id = store.create_pending("browser-A", "state-1", pending(), now=NOW)
    assert store.check_pending(launch_id, "browser-A", now=NOW + 600).id == launch_id
    with pytest.raises(LaunchNotFound):
        store.check_pending(launch_id, "browser-A", now=NOW + 600.5)
    with pytest.raises(StateNotRecognised):
        store.claim("state-1", "browser-A", now=NOW + 600.5)


def test_a_state_is_claimed_once(store):
    launch_id = store.create_pending("browser-A", "state-1", pending(), now=NOW)
    assert store.claim("state-1", "browser-A", now=NOW).id == launch_id
    with pytest.raises(StateNotRecognised):
        store.claim("state-1", "browser-A", now=NOW)
    with pytest.raises(LaunchNotFound):  # called back: no longer pending
        store.check_pending(launch_id, "browser-A", now=NOW)


@pytest.mark.parametrize("state", ["", "state-2", "STATE-1"])
def test_an_unknown_state_is_not_recognised(store, state):
    store.create_pending("browser-A", "state-1", pending(), now=NOW)
    with pytest.raises(StateNotRecognised):
        store.claim(state, "browser-A", now=NOW)


@pytest.mark.parametrize("intruder", ["browser-B", None, ""])
def test_a_claim_from_another_browser_discards_the_launch(store, intruder):
    store.create_pending("browser-A", "state-1", pending(), now=NOW)
    with pytest.raises(BrowserMismatch) as raised:
        store.claim("state-1", intruder, now=NOW)
    assert raised.value.pending == pending()
    with pytest.raises(StateNotRecognised):
        store.claim("state-1", "browser-A", now=NOW)
    assert store.purge_expired(now=NOW + 10 ** 9) == 0  # nothing left behind


def test_racing_claims_of_one_state_let_exactly_one_win(store):
    store.create_pending("browser-A", "state-1", pending(), now=NOW)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def claim():
        barrier.wait()
        try:
            store.claim("state-1", "browser-A", now=NOW)
            results.append("won")
        except StateNotRecognised:
            results.append("lost")

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["lost"] * 7 + ["won"]


# -- active launches ------------------------------------------------------------------------------------
def test_an_active_launch_opens_only_for_its_browser_until_it_expires(store):
    launch_id = activated(store)
    got = store.get_active(launch_id, "browser-A", now=NOW + 1)
    assert (got.id, got.version, got.expires, got.state) == (launch_id, 2, NOW + LIFETIME, active())
    for browser in ("browser-B", None, ""):
        with pytest.raises(LaunchNotFound):
            store.get_active(launch_id, browser, now=NOW + 1)
    assert store.get_active(launch_id, "browser-A", now=NOW + LIFETIME).id == launch_id
    with pytest.raises(LaunchNotFound):
        store.get_active(launch_id, "browser-A", now=NOW + LIFETIME + 1)


def test_a_pending_launch_is_not_active(store):
    launch_id = store.create_pending("browser-A", "state-1", pending(), now=NOW)
    with pytest.raises(LaunchNotFound):
        store.get_active(launch_id, "browser-A", now=NOW)
    assert store.reload(launch_id) is None


def test_activation_rebinds_every_launch_of_the_browser(store):
    first = activated(store, "browser-A", "state-1", token="tok-1")
    waiting = store.create_pending("browser-A", "state-2", pending(2), now=NOW)
    others = activated(store, "browser-C", "state-3", token="tok-3")
    signing_in = store.create_pending("browser-A", "state-4", pending(4), now=NOW)
    store.claim("state-4", "browser-A", now=NOW)
    store.activate(signing_in, active("tok-4"), LIFETIME, new_browser_id="browser-A2", now=NOW)
    for launch_id in (first, signing_in):
        with pytest.raises(LaunchNotFound):
            store.get_active(launch_id, "browser-A", now=NOW)
    assert store.get_active(first, "browser-A2", now=NOW).state.grant.access_token == "tok-1"
    assert store.get_active(signing_in, "browser-A2", now=NOW).state.grant.access_token == "tok-4"
    assert store.check_pending(waiting, "browser-A2", now=NOW).id == waiting
    assert store.get_active(others, "browser-C", now=NOW).state.grant.access_token == "tok-3"
    with pytest.raises(LaunchNotFound):
        store.get_active(others, "browser-A2", now=NOW)


def test_a_planted_binding_opens_nothing_after_the_sign_in(store):
    launch_id = activated(store, "planted-by-attacker", new_browser="fresh-after-sign-in")
    with pytest.raises(LaunchNotFound):
        store.get_active(launch_id, "planted-by-attacker", now=NOW)
    assert store.get_active(launch_id, "fresh-after-sign-in", now=NOW).id == launch_id


def test_update_is_a_compare_and_swap_on_the_version(store):
    launch_id = activated(store)
    read_by_a = store.get_active(launch_id, "browser-A", now=NOW)
    read_by_b = store.get_active(launch_id, "browser-A", now=NOW)
    renewed = store.update(read_by_a, active("tok-secret-2"))
    assert (renewed.version, renewed.expires, renewed.state.grant.access_token) == (3, NOW + LIFETIME, "tok-secret-2")
    assert store.update(read_by_b, active("tok-secret-3")) is None
    latest = store.reload(launch_id)
    assert (latest.version, latest.state.grant.access_token) == (3, "tok-secret-2")
    assert store.update(latest, active("tok-secret-3")).version == 4


def test_racing_updates_of_one_version_let_exactly_one_win(store):
    launch_id = activated(store)
    read = store.get_active(launch_id, "browser-A", now=NOW)
    results: list[str | None] = []
    barrier = threading.Barrier(8)

    def update(n: int):
        barrier.wait()
        stored = store.update(read, active(f"tok-{n}"))
        results.append(None if stored is None else stored.state.grant.access_token)

    threads = [threading.Thread(target=update, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and results.count(None) == 7
    assert store.reload(launch_id).state.grant.access_token == winners[0]


def test_discard_removes_the_launch(store):
    launch_id = activated(store)
    store.discard(launch_id)
    with pytest.raises(LaunchNotFound):
        store.get_active(launch_id, "browser-A", now=NOW)
    assert store.reload(launch_id) is None
    assert store.purge_expired(now=NOW + 10 ** 9) == 0


def test_purge_deletes_exactly_the_expired(store):
    store.create_pending("browser-A", "state-1", pending(), now=NOW)  # expires NOW + 600
    kept = activated(store, "browser-B", "state-2")  # expires NOW + 8 h
    assert store.purge_expired(now=NOW + 599) == 0
    assert store.purge_expired(now=NOW + 601) == 1
    assert store.get_active(kept, "browser-B", now=NOW + 601).id == kept
    assert store.purge_expired(now=NOW + LIFETIME + 1) == 1
    assert store.purge_expired(now=NOW + LIFETIME + 1) == 0


# -- bounds --------------------------------------------------------------------------------------------
def test_twenty_pending_launches_per_browser(store):
    for n in range(20):
        store.create_pending("browser-A", f"state-{n}", pending(n), now=NOW + n)
    with pytest.raises(TooManyPendingLaunches) as raised:
        store.create_pending("browser-A", "state-20", pending(20), now=NOW + 100)
    assert raised.value.retry_after == 501  # the oldest expires at NOW + 600
    store.create_pending("browser-B", "state-b", pending(), now=NOW + 100)  # another browser is not held up
    store.claim("state-0", "browser-A", now=NOW + 100)  # a callback frees a place
    store.create_pending("browser-A", "state-20", pending(20), now=NOW + 100)
    with pytest.raises(TooManyPendingLaunches) as raised:
        store.create_pending("browser-A", "state-21", pending(21), now=NOW + 100)
    assert raised.value.retry_after == 502
    store.create_pending("browser-A", "state-22", pending(22), now=NOW + 601.5)  # the first two expired


def test_a_total_of_pending_launches(store):
    store.max_pending_total = 5
    for n in range(5):
        store.create_pending(f"browser-{n}", f"state-{n}", pending(n), now=NOW)
    with pytest.raises(TooManyPendingLaunches) as raised:
        store.create_pending("browser-9", "state-9", pending(9), now=NOW + 10)
    assert raised.value.retry_after == 591
    store.discard(store.claim("state-3", "browser-3", now=NOW + 10).id)
    store.create_pending("browser-9", "state-9", pending(9), now=NOW + 10)


def test_the_rebound_browser_keeps_its_pending_count(store):
    for n in range(19):
        store.create_pending("browser-A", f"state-{n}", pending(n), now=NOW)
    activated(store, "browser-A", "state-x", new_browser="browser-A2")
    store.create_pending("browser-A2", "state-19", pending(19), now=NOW)
    with pytest.raises(TooManyPendingLaunches):
        store.create_pending("browser-A2", "state-20", pending(20), now=NOW)


# -- sealing and key rotation ------------------------------------------------------------------------
def test_payloads_states_and_bindings_are_not_stored_in_clear(store):
    launch_id = activated(store, "browser-secret-binding", "state-secret-value", token="tok-secret-value")
    store.create_pending("browser-secret-binding", "state-secret-2", pending(), now=NOW)
    raw = raw_bytes(store)
    assert launch_id.encode() in raw  # the look behind the store sees the records...
    for secret in (b"tok-secret-value", b"rt-secret-1", b"pt-secret-1001", b"verifier-1-", b"browser-secret-binding",
                   b"state-secret-value", b"state-secret-2", b"ehr.example.org"):
        assert secret not in raw  # ...and none of what they hold


def test_a_record_sealed_under_another_key_is_gone(store_kind, tmp_path, request):
    prefix = "rotation-gone:"
    old = make_store(store_kind, tmp_path, request, secret="K1" * 20, prefix=prefix)
    launch_id = activated(old)
    new = make_store(store_kind, tmp_path, request, secret="K2" * 20, prefix=prefix)
    with pytest.raises(LaunchNotFound):
        new.get_active(launch_id, "browser-A", now=NOW)


def test_after_a_key_rotation_records_open_and_are_resealed_under_the_new_key(store_kind, tmp_path, request):
    prefix = f"rotation-{store_kind}-{tmp_path.name}:"
    k1, k2 = "K1" * 20, "K2" * 20
    before = make_store(store_kind, tmp_path, request, secret=k1, prefix=prefix)
    launch_id = activated(before)
    waiting = before.create_pending("browser-A", "state-w", pending(2), now=NOW)
    rotated = make_store(store_kind, tmp_path, request, secret=k2, fallbacks=[k1], prefix=prefix)
    assert rotated.check_pending(waiting, "browser-A", now=NOW).state == pending(2)
    got = rotated.get_active(launch_id, "browser-A", now=NOW)
    assert (got.version, got.state) == (2, active())  # opened with K1; re-sealed, same version
    only_k2 = make_store(store_kind, tmp_path, request, secret=k2, prefix=prefix)
    assert only_k2.get_active(launch_id, "browser-A", now=NOW).state == active()
    only_k1 = make_store(store_kind, tmp_path, request, secret=k1, prefix=prefix)
    with pytest.raises(LaunchNotFound):
        only_k1.get_active(launch_id, "browser-A", now=NOW)


# -- unusable stores ------------------------------------------------------------------------------------
def test_a_corrupt_sqlite_file_is_unavailable(tmp_path):
    path = tmp_path / "launches.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable) as raised:
        SqliteLaunchStore(path, SECRET)
    assert raised.value.path == str(path)


def test_a_redis_that_does_not_answer_is_unavailable_at_start():
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreUnavailable) as raised:
        RedisLaunchStore(f"redis://user:pw@127.0.0.1:{port}/0", SECRET)
    assert raised.value.path == f"redis://127.0.0.1:{port}/0 (keys imaging-app:*)"
    assert raised.value.problem.startswith("ConnectionError: ")
    assert "pw" not in str(raised.value)


def test_a_wrong_redis_password_is_unavailable_at_start(redis_server):
    with pytest.raises(StoreUnavailable) as raised:
        RedisLaunchStore(redis_server.url, SECRET, password="wrong-password")
    assert raised.value.problem.startswith("AuthenticationError: ")
    assert "wrong-password" not in str(raised.value)


def test_redis_going_away_makes_every_operation_unavailable():
    with running_redis() as server:
        store = RedisLaunchStore(server.url, SECRET, password=server.password)
        launch_id = activated(store)
        server.process.terminate()
        server.process.wait(timeout=10)
        for operation in (lambda: store.create_pending("browser-A", "state-9", pending(), now=NOW),
                          lambda: store.claim("state-9", "browser-A", now=NOW),
                          lambda: store.get_active(launch_id, "browser-A", now=NOW),
                          lambda: store.update(store.reload(launch_id), active())):
            with pytest.raises(StoreUnavailable) as raised:
                operation()
            assert raised.value.problem.startswith("ConnectionError: ")


# -- Redis specifics -----------------------------------------------------------------------------------
def test_redis_keys_carry_the_launch_lifetime_as_ttl(redis_server, tmp_path, request):
    store = make_store("redis", tmp_path, request, prefix="ttl-test:")
    launch_id = store.create_pending("browser-A", "state-1", pending())
    client = redis_server.client()
    assert 599_000 <= client.pttl(f"ttl-test:launch:{launch_id}") <= 600_000
    store.claim("state-1", "browser-A")
    store.activate(launch_id, active(), LIFETIME)
    assert LIFETIME * 1000 - 5000 <= client.pttl(f"ttl-test:launch:{launch_id}") <= LIFETIME * 1000
    assert client.pttl(f"ttl-test:browser:{__import__('hashlib').sha256(b'browser-A').hexdigest()}") > 599_000
    store.discard(launch_id)
    assert sorted(client.scan_iter(match="ttl-test:*")) == []


def test_redis_key_prefixes_keep_two_apps_apart(redis_server, tmp_path, request):
    one = make_store("redis", tmp_path, request, prefix="app-one:")
    two = make_store("redis", tmp_path, request, prefix="app-two:")
    launch_id = activated(one)
    with pytest.raises(LaunchNotFound):
        two.get_active(launch_id, "browser-A", now=NOW)
    assert two.purge_expired(now=NOW + 10 ** 9) == 0
    assert one.purge_expired(now=NOW + 10 ** 9) == 1


def test_one_renewal_lease_at_a_time(store):
    launch_id = activated(store)
    owner = store.acquire_renewal(launch_id, 30)
    assert owner and store.acquire_renewal(launch_id, 30) is None
    store.release_renewal(launch_id, "not-the-owner")
    assert store.acquire_renewal(launch_id, 30) is None
    store.release_renewal(launch_id, owner)
    again = store.acquire_renewal(launch_id, 0.2)
    assert again and again != owner
    assert store.acquire_renewal("another-launch", 30)  # per launch
    __import__("time").sleep(0.3)  # an abandoned lease expires
    assert store.acquire_renewal(launch_id, 30)


# -- the study list: its own record, bound to its launch ---------------------------------------------------
def study_list(n: int = 3, tag: str = "list-secret") -> StudyList:
    studies = [StudySummary(id=f"is-{i}", study_instance_uid=f"2.25.{1000 + i}", viewer_problem=None,
                            started=f"2020-01-{i + 1:02d}", started_sort=1_577_836_800.0 + i * 86400,
                            modalities=("CT", "MR"), description=f"{tag} study {i}", accession_number=f"ACC-{tag}-{i}",
                            number_of_series=2, number_of_instances=40, status="available", body_sites=("chest",))
               for i in range(n)]
    return StudyList(studies=studies, banner=None, fetched_at=NOW - 5, reports_problem="not granted")


def list_records(store) -> list[str]:
    """The launch ids that have a list record (SQLite rows; Redis keys)."""
    if isinstance(store, SqliteLaunchStore):
        with sqlite3.connect(store.path) as db:
            return [row[0] for row in db.execute("SELECT launch_id FROM study_lists")]
    prefix = f"{store.key_prefix}list:"
    return [key.decode()[len(prefix):] for key in store._redis.scan_iter(match=prefix + "*")]


def kept(store: LaunchStore, launch_id: str, listed: StudyList, browser: str = "browser-A"):
    launch = store.get_active(launch_id, browser, now=NOW)
    ref = StudyListRef.new(listed)
    stored = store.keep_list(launch, launch.state.with_list_ref(ref), listed)
    return launch, ref, stored


def test_a_kept_list_is_its_own_record_read_by_its_reference(store):
    launch_id = activated(store)
    launch, ref, stored = kept(store, launch_id, study_list(3))
    assert (stored.version, stored.state.list_ref) == (launch.version + 1, ref)
    assert (ref.fetched_at, ref.studies, len(ref.version)) == (NOW - 5, 3, 22)
    again = store.get_active(launch_id, "browser-A", now=NOW)
    assert again.version == stored.version and again.state.list_ref == ref
    assert again.state.study_list is None  # no loader: the launch record does not carry the studies
    assert store.get_study_list(launch_id, ref, now=NOW) == study_list(3)
    assert store.get_study_list(launch_id, StudyListRef("another-version-000000", NOW, 3), now=NOW) is None


def test_the_launch_record_stays_small_whatever_the_list(store):
    small, large = activated(store, "browser-A", "state-1"), activated(store, "browser-B", "state-2")
    kept(store, small, study_list(1))
    kept(store, large, study_list(2000), "browser-B")
    sizes = {}
    for launch_id in (small, large):
        if isinstance(store, SqliteLaunchStore):
            with sqlite3.connect(store.path) as db:
                sizes[launch_id] = len(db.execute("SELECT payload FROM launches WHERE id = ?",
                                                  (launch_id,)).fetchone()[0])
        else:
            sizes[launch_id] = len(store._redis.hget(f"{store.key_prefix}launch:{launch_id}", "payload"))
    assert sizes[small] == sizes[large] < 2048


def test_keeping_a_list_is_a_compare_and_swap_and_a_lost_race_writes_no_list(store):
    launch_id = activated(store)
    launch, first, _ = kept(store, launch_id, study_list(2))
    second = StudyListRef.new(study_list(5))
    assert store.keep_list(launch, launch.state.with_list_ref(second), study_list(5)) is None  # stale version
    assert store.get_study_list(launch_id, second, now=NOW) is None
    assert store.get_study_list(launch_id, first, now=NOW) == study_list(2)


def test_a_new_list_replaces_the_old_one(store):
    launch_id = activated(store)
    _, first, _ = kept(store, launch_id, study_list(2))
    _, second, _ = kept(store, launch_id, study_list(4))
    assert first.version != second.version
    assert store.get_study_list(launch_id, first, now=NOW) is None
    assert store.get_study_list(launch_id, second, now=NOW) == study_list(4)


def test_a_second_launch_never_sees_the_first_launchs_list(store):
    first = activated(store, "browser-A", "state-1")
    second = activated(store, "browser-B", "state-2")
    _, ref, _ = kept(store, first, study_list(2))
    assert store.get_study_list(second, ref, now=NOW) is None
    # even a list record moved under the other launch opens nothing: the launch id is sealed inside
    if isinstance(store, SqliteLaunchStore):
        with sqlite3.connect(store.path) as db:
            db.execute("INSERT INTO study_lists (launch_id, version, payload) SELECT ?, version, payload "
                       "FROM study_lists WHERE launch_id = ?", (second, first))
    else:
        client = store._redis
        client.hset(f"{store.key_prefix}list:{second}",
                    mapping=client.hgetall(f"{store.key_prefix}list:{first}"))
    assert store.get_study_list(second, ref, now=NOW) is None
    assert store.get_study_list(first, ref, now=NOW) == study_list(2)


def test_the_list_is_discarded_with_its_launch(store):
    launch_id = activated(store)
    _, ref, _ = kept(store, launch_id, study_list(2, tag="discarded-list-text"))
    assert list_records(store) == [launch_id]
    store.discard(launch_id)
    assert store.get_study_list(launch_id, ref, now=NOW) is None
    assert list_records(store) == []


def test_the_list_expires_with_its_launch_and_is_purged_with_it(store):
    launch_id = activated(store)
    _, ref, _ = kept(store, launch_id, study_list(2))
    assert store.get_study_list(launch_id, ref, now=NOW + LIFETIME) == study_list(2)
    assert store.get_study_list(launch_id, ref, now=NOW + LIFETIME + 1) is None
    assert list_records(store) == [launch_id]
    assert store.purge_expired(now=NOW + LIFETIME + 1) == 1
    assert list_records(store) == []


def test_the_list_is_not_stored_in_clear(store):
    launch_id = activated(store)
    kept(store, launch_id, study_list(3, tag="clear-text-description"))
    raw = raw_bytes(store)
    for secret in (b"clear-text-description", b"2.25.1001", b"ACC-clear-text"):
        assert secret not in raw


def test_after_a_key_rotation_a_list_opens_and_is_resealed(store_kind, tmp_path, request):
    prefix = f"list-rotation-{store_kind}-{tmp_path.name}:"
    k1, k2 = "K1" * 20, "K2" * 20
    before = make_store(store_kind, tmp_path, request, secret=k1, prefix=prefix)
    launch_id = activated(before)
    _, ref, _ = kept(before, launch_id, study_list(2))
    rotated = make_store(store_kind, tmp_path, request, secret=k2, fallbacks=[k1], prefix=prefix)
    assert rotated.get_study_list(launch_id, ref, now=NOW) == study_list(2)
    only_k2 = make_store(store_kind, tmp_path, request, secret=k2, prefix=prefix)
    rotated.get_active(launch_id, "browser-A", now=NOW)  # the launch record too
    assert only_k2.get_study_list(launch_id, ref, now=NOW) == study_list(2)


def test_redis_list_key_carries_the_launchs_ttl(redis_server, tmp_path, request):
    store = make_store("redis", tmp_path, request, prefix="list-ttl:")
    launch_id = store.create_pending("browser-A", "state-1", pending())
    store.claim("state-1", "browser-A")
    store.activate(launch_id, active(), LIFETIME)
    launch = store.get_active(launch_id, "browser-A")
    ref = StudyListRef.new(study_list(1))
    store.keep_list(launch, launch.state.with_list_ref(ref), study_list(1))
    client = redis_server.client()
    launch_ttl, list_ttl = client.pttl(f"list-ttl:launch:{launch_id}"), client.pttl(f"list-ttl:list:{launch_id}")
    assert LIFETIME * 1000 - 5000 <= list_ttl <= launch_ttl
    store.discard(launch_id)
    assert sorted(client.scan_iter(match="list-ttl:*")) == []
