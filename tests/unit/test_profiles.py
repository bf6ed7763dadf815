"""Profiles, last interactions, the in-memory store and the profile materialiser's logic (pure, no Redis)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.events.decode import format_ts
from app.core.features import FeatureConfig
from app.core.profiles.interactions import KEEP, PAGE_CHARS, Interactions
from app.core.profiles.profile import InMemoryProfileStore, build_profile, segment_ids
from app.core.segments.model import ModelSnapshot
from app.core.state.user import UserState
from app.http.api import ApiError, authorized, check_user_id, parse_page, segment_catalog
from app.redis.materialiser import ProfileMaterialiser, profile_updates
from tables.codecs import encode_state
from tests.conftest import T0, click

MODEL = ModelSnapshot(version=4, features=("monetary", "mobile_share"), log_features=(), mean=(0.0, 0.0),
                      std=(1.0, 1.0), centroids=((1.0, -0.5), (-1.0, 0.5)), segment_ids=("c1", "c2"),
                      names=("high spend", "mobile"), samples=10, ts=T0)  # fmt: skip


def _state(*events) -> UserState:
    state = UserState()
    for event in events:
        if state.features.apply(event, FeatureConfig()) == "ok":
            state.interactions.add(event)
    return state


def test_profile_carries_segment_rules_features_interactions_and_traits():
    state = _state(click(kind="identify", traits={"age": 31, "country": "FR"}),
                   click(kind="purchase", ts=T0 + 60, value=25.0, page="/p/9"))  # fmt: skip
    state.membership.segment, state.membership.model_version = "c2", 4
    state.signals.rules = ["champions"]
    profile = build_profile("u1", state, MODEL, FeatureConfig(), updated_at=T0 + 120)
    assert profile["seq"] == 2
    assert (profile["segment"], profile["segment_name"], profile["model_version"]) == ("c2", "mobile", 4)
    assert profile["rules"] == ["champions"]
    assert profile["features"]["monetary"] == 25.0 and profile["features"]["trait_age"] == 31.0
    assert profile["traits"] == {"age": 31, "country": "FR"}
    assert [i["type"] for i in profile["interactions"]] == ["purchase", "identify"]
    assert profile["last_event_at"] == format_ts(T0 + 60) and profile["updated_at"] == format_ts(T0 + 120)
    assert segment_ids(profile) == ["c2", "rule:champions"]


def test_a_new_user_is_listed_under_no_cluster_segment():
    profile = build_profile("u1", _state(click()), None, FeatureConfig(), updated_at=T0)
    assert profile["segment"] == "new" and segment_ids(profile) == []


@given(st.lists(st.tuples(st.integers(0, 500), st.sampled_from(["page_view", "search"])), max_size=40))
def test_interactions_keep_the_latest_by_event_time(timeline):
    recent = Interactions()
    for second, kind in timeline:
        recent.add(click(kind=kind, ts=T0 + second))
    times = [item[1] for item in recent.items]
    assert times == sorted(times)
    assert len(times) == min(KEEP, len(timeline))
    assert sorted(times) == sorted(T0 + s for s, _ in timeline)[-len(times):] if times else True


def test_interactions_cut_long_pages():
    recent = Interactions()
    recent.add(click(page="/" + "x" * 500))
    assert len(recent.as_list()[0]["page"]) == PAGE_CHARS


def test_state_of_schema_3_reads_with_no_interactions():
    record = _state(click()).to_record()
    record[0] = 3
    old = UserState.from_record(record[:5])
    assert old.interactions.items == [] and old.features.events == 1
    again = _state(click())
    assert UserState.from_record(again.to_record()).interactions.items == again.interactions.items


def _profile(user: str, seq: int, segment: str = "c1", rules=()) -> dict:
    return {"user_id": user, "seq": seq, "segment": segment, "rules": list(rules)}


def test_in_memory_store_refuses_older_writes_and_moves_index_entries():
    store = InMemoryProfileStore()
    assert store.write_many([_profile("u1", 3, "c1", ["vip"])]) == (1, 0)
    assert store.write_many([_profile("u1", 2, "c2")]) == (0, 1)  # older: refused
    assert store.write_many([_profile("u1", 3, "c2")]) == (1, 0)  # the same seq again is fine
    assert asyncio.run(store.sizes(["c1", "c2", "rule:vip"])) == {"c1": 0, "c2": 1, "rule:vip": 0}


class _FlakyStore(InMemoryProfileStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True
        self.calls = 0

    async def write(self, profiles):
        self.calls += 1
        if self.fail:
            raise ConnectionError("redis is down")
        return await super().write(profiles)


def _materialiser(store, seen: list | None = None) -> ProfileMaterialiser:
    observe = (lambda what, value: seen.append((what, value))) if seen is not None else (lambda what, value: None)
    return ProfileMaterialiser(bootstrap="127.0.0.1:9", topic="t", group="g", store=store, model=lambda: MODEL,
                               features=FeatureConfig(), max_backoff_s=0.05, observe=observe)  # fmt: skip


def test_the_latest_live_state_of_each_user_is_written_after_every_erasure_of_the_batch():
    old, new = _state(click(ts=T0), click(ts=T0 + 1)), _state(click(ts=T0 + 2))
    withdrawn = old.withdrawal()
    updates = profile_updates([
        (b"kept", encode_state(old)), (b"kept", encode_state(new)),  # the later state wins
        (b"reborn", None), (b"reborn", encode_state(new)),  # erased, then new events: removed, then written
        (b"gone", encode_state(old)), (b"gone", None),
        (b"quiet", encode_state(withdrawn)),
    ])  # fmt: skip
    assert updates.erase == ["reborn", "gone", "quiet"]
    assert [(user, state.features.events) for user, state in updates.write] == [("kept", 1), ("reborn", 1)]


def test_a_user_erased_and_recreated_in_one_batch_replaces_the_older_profile():
    """The new state counts from 1 again: without the erasure first, the store would keep the old one."""
    store = InMemoryProfileStore()
    store.write_many([{**_profile("u1", 40, "c2", ["vip"]), "traits": {"email": "old@example.com"}}])
    fresh = _state(click(ts=T0))
    asyncio.run(_materialiser(store).apply(profile_updates([(b"u1", None), (b"u1", encode_state(fresh))])))
    assert store.profiles["u1"]["seq"] == 1 and store.profiles["u1"]["traits"] == {}
    assert asyncio.run(store.sizes(["c2", "rule:vip"])) == {"c2": 0, "rule:vip": 0}


def test_a_batch_the_store_refuses_is_retried_until_it_is_written():
    store, seen = _FlakyStore(), []
    materialiser = _materialiser(store, seen)
    updates = profile_updates([(b"u1", encode_state(_state(click()))), (b"u2", encode_state(_state(click())))])

    async def recover_soon() -> None:
        await asyncio.sleep(0.3)
        store.fail = False

    async def main() -> None:
        await asyncio.gather(materialiser._write_until_done(updates), recover_soon())

    asyncio.run(asyncio.wait_for(main(), 10.0))  # a hang guard, not a speed assertion
    assert store.calls > 1 and sorted(store.profiles) == ["u1", "u2"]
    assert ("error", 1) in seen and ("written", 2) in seen


@pytest.mark.parametrize("user_id", ["", "a\nb", "x" * 257, "tab\there"])
def test_bad_user_ids_are_400(user_id):
    with pytest.raises(ApiError) as raised:
        check_user_id(user_id)
    assert raised.value.status == 400


@pytest.mark.parametrize("query", [
    {"cursor": "abc"}, {"limit": "0"}, {"limit": "1001"}, {"limit": "-5"},
    {"limit": "²"}, {"cursor": "²"}, {"limit": "9" * 5_000},  # int() refuses these: were a 500
    {"cursor": str(2**64)},  # past Redis's cursors: was a 503 and a Redis error
])  # fmt: skip
def test_bad_pages_are_400(query):
    with pytest.raises(ApiError) as raised:
        parse_page(query)
    assert raised.value.status == 400


def test_bearer_token_must_match_exactly():
    assert authorized("Bearer t0k", "t0k") and authorized("bearer t0k", "t0k")
    assert not authorized("Bearer t0", "t0k") and not authorized("Basic t0k", "t0k") and not authorized("", "t0k")


def test_segment_catalog_lists_clusters_with_centroids_then_rules():
    catalog = segment_catalog(MODEL, {"vip": "monetary > 500"})
    assert [s["id"] for s in catalog] == ["c1", "c2", "rule:vip"]
    assert catalog[0]["centroid"] == {"monetary": 1.0, "mobile_share": -0.5} and catalog[2]["rule"] == "monetary > 500"
