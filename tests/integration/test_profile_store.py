"""The profile store's contract, on the in-memory twin and on a real Redis; the materialiser against a sick Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from redis.asyncio import Redis

from app.core.events.decode import ClickEvent
from app.core.features import FeatureConfig
from app.core.profiles.profile import InMemoryProfileStore
from app.core.state.user import UserState
from app.redis.materialiser import ProfileMaterialiser
from app.redis.profiles import RedisProfileStore
from tables.codecs import encode_state
from tests.conftest import T0
from tests.kafka_harness import BOOTSTRAP, committed, produce
from tests.redis_harness import GUARD_S

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

REDIS_URL = "redis://127.0.0.1:6379/0"  # from scripts/services
TTL_S = 3_600


def _profile(user: str, seq: int, segment: str = "c1", rules: tuple[str, ...] = ()) -> dict:
    return {"user_id": user, "seq": seq, "segment": segment, "rules": list(rules), "traits": {"n": seq}}


class Clock:
    """A settable clock for the store (it scores index entries by expiry time)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _redis_store(url: str = REDIS_URL, clock=time.time, timeout_s: float = 2.0) -> RedisProfileStore:
    return RedisProfileStore(url, ttl_s=TTL_S, timeout_s=timeout_s, prefix=f"test-{uuid.uuid4().hex[:10]}:",
                             clock=clock)  # fmt: skip


@pytest.fixture(params=["memory", "redis"])
async def store(request):
    if request.param == "memory":
        yield InMemoryProfileStore()
        return
    store = _redis_store()
    try:
        yield store
    finally:
        await asyncio.wait_for(store.delete_all(), GUARD_S)
        await store.close()


@pytest.fixture
async def clocked():
    """A Redis store on a settable clock (starting at 1,000,000 s), and that clock."""
    clock = Clock(1_000_000.0)
    store = _redis_store(clock=clock)
    try:
        yield store, clock
    finally:
        await asyncio.wait_for(store.delete_all(), GUARD_S)
        await store.close()


async def _all_members(store, segment: str, count: int) -> tuple[list[str], int]:
    """Every user of ``segment``, page by page, as listed (repeats kept), and the number of pages."""
    listed, cursor, pages = [], "", 0
    while True:
        users, cursor = await store.members(segment, cursor, count)
        listed += users
        pages += 1
        if not cursor:
            return listed, pages
        assert pages < 10_000, "members() never returned an empty cursor"


async def test_an_older_seq_is_refused_and_an_equal_or_newer_one_is_written(store):
    assert await store.write([_profile("u1", 3)]) == (1, 0)
    assert await store.write([_profile("u1", 2, "c2")]) == (0, 1)
    assert (await store.get("u1"))["seq"] == 3 and (await store.get("u1"))["segment"] == "c1"
    assert await store.write([_profile("u1", 3, "c2")]) == (1, 0)  # the same seq again: written
    assert (await store.get("u1"))["segment"] == "c2"
    assert await store.write([_profile("u1", 5, "c3"), _profile("u1", 4, "c4")]) == (1, 1)  # one round trip
    assert await store.get("u1") == _profile("u1", 5, "c3")
    assert await store.get("nobody") is None


async def test_a_user_who_moves_leaves_the_old_segments_index(store):
    await store.write([_profile("u1", 1, "c1", ("vip",)), _profile("u2", 1, "c1")])
    await store.write([_profile("u1", 2, "c2")])
    await store.write([_profile("u1", 1, "c1", ("vip",))])  # older: refused, must not list u1 again
    assert set((await _all_members(store, "c1", 10))[0]) == {"u2"}
    assert set((await _all_members(store, "c2", 10))[0]) == {"u1"}
    assert (await _all_members(store, "rule:vip", 10))[0] == []
    assert await store.sizes(["c1", "c2", "rule:vip"]) == {"c1": 1, "c2": 1, "rule:vip": 0}


async def test_a_new_user_is_in_no_cluster_segment_but_in_its_rule_segments(store):
    await store.write([_profile("u1", 1, "new", ("buyer",))])
    assert await store.sizes(["new", "rule:buyer"]) == {"new": 0, "rule:buyer": 1}


async def test_paging_members_lists_every_member_once_and_ends(store):
    # 300 members: more than Redis keeps in a listpack (128), so ZSCAN really pages.
    users = {f"user-{i:03d}" for i in range(300)}
    await store.write([_profile(user, 1, "c1", ("vip",) if user.endswith("7") else ()) for user in sorted(users)])
    await store.write([_profile(f"other-{i}", 1, "c2") for i in range(20)])
    listed, pages = await _all_members(store, "c1", 7)
    assert set(listed) == users  # ZSCAN may repeat a user: as a set, exactly the members
    assert pages > 1
    assert len(listed) < 2 * len(users)
    assert set((await _all_members(store, "rule:vip", 5))[0]) == {u for u in users if u.endswith("7")}


async def test_sizes_count_each_segments_users(store):
    await store.write([_profile(f"a{i}", 1, "c1", ("vip", "buyer")) for i in range(5)])
    await store.write([_profile(f"b{i}", 1, "c2", ("buyer",)) for i in range(3)])
    await store.write([_profile("a0", 2, "c2")])
    assert await store.sizes(["c1", "c2", "rule:vip", "rule:buyer", "c9"]) == {
        "c1": 4, "c2": 4, "rule:vip": 4, "rule:buyer": 7, "c9": 0,
    }  # fmt: skip
    assert await store.sizes([]) == {}


async def test_a_profile_key_expires_ttl_s_after_its_write():
    clock = Clock(2_000_000_000.0)
    store = _redis_store(clock=clock)
    redis = Redis.from_url(REDIS_URL)
    try:
        await store.write([_profile("u1", 1, "c1", ("vip",))])
        ttl = await redis.ttl(f"{store.prefix}profile:u1")
        assert TTL_S - 60 < ttl <= TTL_S
        for segment in ("c1", "rule:vip"):  # index entries are scored by the same expiry
            assert await redis.zscore(f"{store.prefix}segment:{segment}", "u1") == clock.now + TTL_S
        await redis.expire(f"{store.prefix}profile:u1", 10)
        await store.write([_profile("u1", 2, "c1")])  # every write starts the TTL again
        assert await redis.ttl(f"{store.prefix}profile:u1") > TTL_S - 60
    finally:
        await store.delete_all()
        await store.close()
        await redis.aclose()


async def test_expired_entries_are_neither_counted_nor_listed(clocked):
    store, clock = clocked
    await store.write([_profile("old", 1, "c1", ("vip",))])  # index entry expires at 1_003_600
    clock.now += TTL_S / 2
    await store.write([_profile("fresh", 1, "c1", ("vip",))])  # expires at 1_005_400
    assert await store.sizes(["c1", "rule:vip"]) == {"c1": 2, "rule:vip": 2}
    clock.now = 1_000_000.0 + TTL_S + 1
    assert await store.sizes(["c1", "rule:vip"]) == {"c1": 1, "rule:vip": 1}
    assert (await _all_members(store, "c1", 10))[0] == ["fresh"]
    assert (await _all_members(store, "rule:vip", 10))[0] == ["fresh"]
    clock.now += TTL_S
    assert await store.sizes(["c1"]) == {"c1": 0}
    assert (await _all_members(store, "c1", 10))[0] == []


async def test_a_write_to_a_segment_removes_its_expired_entries(clocked):
    store, clock = clocked
    await store.write([_profile("gone", 1, "c1"), _profile("stays", 1, "c1")])
    clock.now += TTL_S + 1  # both expired; the next write to c1 sweeps them out of its index
    await store.write([_profile("new", 1, "c1")])
    redis = Redis.from_url(REDIS_URL)
    try:
        assert await redis.zrange(f"{store.prefix}segment:c1", 0, -1) == [b"new"]
    finally:
        await redis.aclose()


# --- The materialiser against a Redis that stops answering, and a restart -------------------------


def _state(events: int) -> bytes:
    state = UserState()
    for n in range(events):
        state.features.apply(ClickEvent("u", "page_view", T0 + n), FeatureConfig())
    return encode_state(state)


def _materialiser(topic: str, store: RedisProfileStore) -> ProfileMaterialiser:
    return ProfileMaterialiser(bootstrap=BOOTSTRAP, topic=topic, group=f"{topic}-profiles", store=store,
                               model=lambda: None, features=FeatureConfig(), max_backoff_s=0.5)  # fmt: skip


async def test_the_materialiser_writes_every_profile_after_a_redis_outage_and_a_restart(dedicated_redis):
    """Nothing is committed while Redis is down; the next materialiser of the group writes it all."""
    topic = f"it-{uuid.uuid4().hex[:10]}-changelog"
    users = [f"u{i:03d}" for i in range(100)]
    records = [(user.encode(), _state(1)) for user in users] + [(user.encode(), _state(3)) for user in users]
    records += [(user.encode(), None) for user in users[:10]]  # erased
    await produce(topic, records)
    store = _redis_store(dedicated_redis.url, timeout_s=0.25)
    try:
        assert await store.ping()  # a pooled connection exists before the server stops
        dedicated_redis.pause()
        first = _materialiser(topic, store)
        await first.start()
        await asyncio.sleep(3.0)  # it has fetched the records and is retrying the store
        await asyncio.wait_for(first.stop(), GUARD_S)  # a stop (or a crash) before Redis is back
        assert first.batches == 0 and not await committed(f"{topic}-profiles", topic)

        dedicated_redis.resume()
        second = _materialiser(topic, store)
        await second.start()
        try:
            deadline = time.monotonic() + 30
            while sum((await committed(f"{topic}-profiles", topic)).values()) < len(records):
                assert time.monotonic() < deadline, "the second materialiser did not commit the changelog"
                await asyncio.sleep(0.2)
        finally:
            await asyncio.wait_for(second.stop(), GUARD_S)
        assert [await store.get(user) for user in users[:10]] == [None] * 10
        assert {(await store.get(user))["seq"] for user in users[10:]} == {3}
        assert await store.sizes(["new"]) == {"new": 0}  # "new" users are in no segment index
    finally:
        dedicated_redis.resume()
        await asyncio.wait_for(store.delete_all(), GUARD_S)
        await store.close()
