"""The profile store's contract, on the in-memory twin and on a real Redis; the writer against a sick Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from redis.asyncio import Redis

from app.core.profile import InMemoryProfileStore
from app.profile_writer import ProfileWriter
from app.redis_profiles import RedisProfileStore
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


# --- The writer against a Redis that stops answering or is gone ---------------------------------


def _writer(store: RedisProfileStore, seen: list) -> ProfileWriter:
    """A writer whose observations (metric, value) go to ``seen``."""
    return ProfileWriter(store, build=lambda user: _profile(user, 1),
                         observe=lambda what, value: seen.append((what, value)))  # fmt: skip


async def test_a_flush_to_a_stopped_redis_returns_keeps_the_users_then_writes_them(dedicated_redis):
    store, seen = _redis_store(dedicated_redis.url, timeout_s=0.25), []
    writer = _writer(store, seen)
    users = [f"u{i}" for i in range(50)]
    try:
        assert await store.ping()  # a pooled connection exists before the server stops
        dedicated_redis.pause()
        writer.mark(users)
        assert await asyncio.wait_for(writer.flush(now=100.0), GUARD_S) == 0
        assert writer.backlog == len(users)
        assert ("error", 1) in seen and ("backlog", len(users)) in seen and ("written", 0) not in seen

        dedicated_redis.resume()
        assert await asyncio.wait_for(writer.flush(now=100.01), GUARD_S) == 0  # still backing off: no try
        assert writer.backlog == len(users)
        assert await asyncio.wait_for(writer.flush(now=101.0), GUARD_S) == len(users)
        assert writer.backlog == 0 and seen[-1] == ("backlog", 0)
        assert [(await store.get(user))["user_id"] for user in users] == users
        assert await store.sizes(["c1"]) == {"c1": len(users)}
    finally:
        dedicated_redis.resume()
        await asyncio.wait_for(store.delete_all(), GUARD_S)
        await store.close()


async def test_a_flush_to_a_killed_redis_keeps_the_users_until_a_new_one_answers(dedicated_redis):
    store, seen = _redis_store(dedicated_redis.url, timeout_s=0.25), []
    writer = _writer(store, seen)
    try:
        writer.mark(["u1", "u2"])
        assert await asyncio.wait_for(writer.flush(now=100.0), GUARD_S) == 2  # the connection is pooled
        dedicated_redis.kill()
        writer.mark(["u2", "u3"])
        assert await asyncio.wait_for(writer.flush(now=200.0), GUARD_S) == 0  # refused
        assert writer.backlog == 2 and seen.count(("error", 1)) == 1
        assert await asyncio.wait_for(writer.flush(now=201.0), GUARD_S) == 0  # refused again: backs off more
        assert writer.backlog == 2 and seen.count(("error", 1)) == 2

        dedicated_redis.start()  # a new, empty server on the same port
        assert await asyncio.wait_for(writer.flush(now=210.0), GUARD_S) == 2
        assert writer.backlog == 0
        assert await store.get("u1") is None  # the new server never had u1
        assert [(await store.get(user))["seq"] for user in ("u2", "u3")] == [1, 1]
    finally:
        await store.close()
