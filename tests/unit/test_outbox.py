"""The outbox's register and the state that carries it (pure; the agent's side is tests/faults)."""

from __future__ import annotations

import asyncio

import orjson

from app.core.state import UserState
from app.outbox import Outbox
from tables.codecs import decode_state, encode_state


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _trigger(user: str, n: int) -> dict:
    return {"event_id": f"{user}:cart_abandon:{n}", "user_id": user, "details": {"value": 12.5, "items": []}}


def test_outputs_travel_in_the_state_record_and_come_back_as_the_same_bytes():
    state, outbox = UserState(applied=(1, 9)), Outbox()
    sent = outbox.hold({"u1": state}, [("trigger", _trigger("u1", 1)), ("change", {"event_id": "u1:3", "user_id": "u1"})])
    recovered = decode_state(encode_state(state))
    again = Outbox().recovered((recovered.applied[0], entry) for entry in recovered.outbox)
    assert again == sent
    assert [value for *_, value in again] == [orjson.dumps(_trigger("u1", 1)), b'{"event_id":"u1:3","user_id":"u1"}']


def test_a_state_without_outputs_encodes_none_and_old_records_still_read():
    assert decode_state(encode_state(UserState())).outbox is None
    record = UserState().to_record()[:7]  # schema 6: no outbox element
    record[0] = 6
    assert UserState.from_record(record).outbox is None


def test_only_outputs_held_before_a_successful_flush_are_confirmed():
    clock = Clock()
    outbox = Outbox(clock=clock)
    early, late = UserState(applied=(0, 1)), UserState(applied=(0, 2))
    outbox.hold({"early": early}, [("trigger", _trigger("early", 1))])

    async def flush_while_another_output_is_held() -> bool:
        clock.now = 2.0
        outbox.hold({"late": late}, [("trigger", _trigger("late", 1))])  # sent during the flush
        return True  # every delivery succeeded

    clock.now = 1.0
    asyncio.run(outbox.confirm(flush_while_another_output_is_held))
    assert outbox.confirmed_users() == ["early"] and len(outbox) == 1

    clock.now = 3.0
    asyncio.run(outbox.confirm(lambda: asyncio.sleep(0, result=False)))  # a delivery failed
    assert outbox.confirmed_users() == [] and len(outbox) == 1


def test_revoked_partitions_leave_the_register_to_their_next_owner():
    outbox = Outbox()
    outbox.hold({"a": UserState(applied=(0, 1)), "b": UserState(applied=(3, 1))},
                [("trigger", _trigger("a", 1)), ("trigger", _trigger("b", 1))])  # fmt: skip
    outbox.forget({3})
    assert len(outbox) == 1
