"""The per-process cache of decoded lists (:mod:`app.launches.list_cache`) and how a launch context reads its
list: cache first, else the store's list record (then cached), never an older list, bounded by entries and bytes."""

from __future__ import annotations

import pytest

from app.launches import list_cache
from app.launches.context import LaunchContext
from app.launches.list_cache import ListCache, cost
from app.launches.state import StudyListRef
from tests.launches.test_store_contract import LIFETIME, active, pending, study_list

pytestmark = pytest.mark.usefixtures("empty_cache")


@pytest.fixture
def empty_cache():
    list_cache.clear()
    yield
    list_cache.clear()


class CountingStore:
    """A store wrapper counting list-record reads."""

    def __init__(self, store):
        self._store, self.list_reads = store, 0

    def get_study_list(self, *args, **kwargs):
        self.list_reads += 1
        return self._store.get_study_list(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._store, name)


def activated(store) -> str:
    """An active launch on the real clock (the context reads lists at the current time)."""
    launch_id = store.create_pending("browser-A", "state-1", pending())
    store.claim("state-1", "browser-A")
    store.activate(launch_id, active(), LIFETIME)
    return launch_id


def context(store, launch_id: str) -> LaunchContext:
    return LaunchContext(store.get_active(launch_id, "browser-A"), ehr=None, store=store, settings=None,
                         outbound=None)


def test_a_kept_list_is_served_from_the_process_cache_then_from_the_store_in_a_fresh_process(store):
    counting = CountingStore(store)
    launch_id = activated(store)
    first = context(counting, launch_id)
    assert first.state.study_list is None and first.state.list_ref is None
    first.keep_study_list(study_list(3))
    reopened = context(counting, launch_id)
    assert reopened.state.study_list == study_list(3)
    assert reopened.state.study_list is reopened.state.study_list  # one object, shared
    assert counting.list_reads == 0
    list_cache.clear()  # another worker: reads the record once, then from its cache
    assert context(counting, launch_id).state.study_list == study_list(3)
    assert context(counting, launch_id).state.study_list == study_list(3)
    assert counting.list_reads == 1


def test_a_re_fetched_list_is_never_answered_with_the_older_one(store):
    launch_id = activated(store)
    context(store, launch_id).keep_study_list(study_list(2))  # this worker caches it
    old_ref = context(store, launch_id).state.list_ref
    other_worker = store.get_active(launch_id, "browser-A")  # another worker keeps a newer list (not in our cache)
    new_ref = StudyListRef.new(study_list(5))
    assert store.keep_list(other_worker, other_worker.state.with_list_ref(new_ref), study_list(5)) is not None
    now = context(store, launch_id)
    assert now.state.list_ref == new_ref != old_ref and now.state.study_list == study_list(5)


def test_a_token_renewal_write_keeps_the_list_reference(store):
    launch_id = activated(store)
    context(store, launch_id).keep_study_list(study_list(2))
    ctx = context(store, launch_id)
    assert ctx._write(lambda state: state.with_grant(state.grant))
    assert context(store, launch_id).state.study_list == study_list(2)


def test_the_cache_is_bounded_by_entries_and_bytes_least_recently_used_first():
    cache = ListCache(max_entries=2, max_bytes=10 ** 9)
    for name in "abc":
        cache.put(name, "v", study_list(1))
        if name == "b":
            assert cache.get("a", "v") is not None  # a is now the most recently used
    assert (cache.get("a", "v") is not None, cache.get("b", "v"), cache.get("c", "v") is not None) == (True, None, True)
    small = ListCache(max_entries=100, max_bytes=cost(study_list(10)) * 2)
    small.put("x", "v", study_list(10))
    small.put("y", "v", study_list(10))
    small.put("z", "v", study_list(10))
    assert small.stats()["entries"] == 2 and small.get("x", "v") is None
    small.put("huge", "v", study_list(1000))  # larger than the whole budget: not kept, nothing evicted
    assert small.get("huge", "v") is None and small.stats()["entries"] == 2


def test_a_launch_record_of_the_earlier_version_embedding_its_list_opens_without_it():
    from app.launches.state import ActiveLaunch
    earlier = {**active().to_json(), "study_list": study_list(2).to_json()}
    earlier.pop("list_ref")
    state = ActiveLaunch.from_json(earlier)
    assert state.list_ref is None and state.study_list is None and state.grant == active().grant
