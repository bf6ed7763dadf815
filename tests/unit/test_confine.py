"""A message the engine fails on is set aside; the rest of its batch is applied exactly as without it."""

from __future__ import annotations

from app.core.engine.confine import Failure, process_confined
from app.core.engine.process import Engine, EngineConfig
from app.core.events.decode import ClickEvent
from tables.codecs import decode_state, encode_state

T = 1_767_225_600.0


class StoreWithCache:
    """A worker's states: encoded in a store, decoded in a cache the engine changes in place."""

    def __init__(self) -> None:
        self.store: dict[str, bytes] = {}
        self.cache: dict = {}

    def get(self, user: str):
        if user not in self.cache and user in self.store:
            self.cache[user] = decode_state(self.store[user])
        return self.cache.get(user)

    def forget(self, users) -> None:
        for user in users:
            self.cache.pop(user, None)


def _run(events, messages):
    states = StoreWithCache()
    engine = Engine(EngineConfig())
    result, encoded, failures = process_confined(
        engine, events, states.get, forget=states.forget, messages=messages, encode=encode_state,
        positions=[(0, m) for m in messages],
    )  # fmt: skip
    return engine, result, encoded, failures


def test_a_message_that_fails_in_the_fold_is_set_aside_and_the_others_applied():
    events = [
        ClickEvent("u1", "search", T), ClickEvent("u1", "page_view", T + 1),
        ClickEvent("poison", "purchase", T + 2, value="12"),  # past validation, as a defect would let it
        ClickEvent("u2", "search", T + 3), ClickEvent("u1", "search", T + 4),
    ]  # fmt: skip
    messages = [10, 10, 11, 12, 13]
    engine, result, encoded, failures = _run(events, messages)
    assert failures == [Failure(11, failures[0].reason)] and failures[0].reason.startswith("processing failed: TypeError")
    assert sorted(result.touched) == ["u1", "u2"] == sorted(encoded)
    assert result.touched["u1"].features.events == 3 and result.touched["u2"].features.events == 1  # once each
    assert result.outcomes == {"ok": 4}
    assert decode_state(encoded["u1"]).features.events == 3
    assert engine.watermark.max_ts == T + 4


def test_a_state_that_cannot_be_encoded_fails_its_message_before_anything_is_written():
    events = [ClickEvent("u1", "search", T), ClickEvent("big", "identify", T + 1, traits={"n": 2**70})]
    engine, result, encoded, failures = _run(events, [1, 2])
    assert [f.message for f in failures] == [2] and "exceeds 64-bit" in failures[0].reason
    assert sorted(result.touched) == ["u1"] == sorted(encoded)


def test_a_batch_without_failures_is_processed_once_as_a_whole():
    events = [ClickEvent("u1", "search", T), ClickEvent("u2", "search", T + 1)]
    engine, result, encoded, failures = _run(events, [1, 2])
    assert not failures and sorted(encoded) == ["u1", "u2"]
