"""The outbox's marks and the state that carries them (pure; the agent's side is tests/faults)."""

from __future__ import annotations

import asyncio

import orjson

from app.core.state.user import UserState
from app.kafka.outbox import Outbox
from tables.codecs import decode_state, encode_state


def _trigger(user: str, n: int) -> dict:
    return {"event_id": f"{user}:cart_abandon:{n}", "user_id": user, "details": {"value": 12.5, "items": []}}


def _held(*states: UserState) -> list[tuple[int, list]]:
    return [(state.applied[0], entry) for state in states for entry in state.outbox or ()]


def test_outputs_travel_in_the_state_record_and_come_back_as_the_same_bytes():
    state, outbox = UserState(applied=(1, 9)), Outbox()
    sent = outbox.hold({"u1": state}, [("trigger", _trigger("u1", 1)), ("change", {"event_id": "u1:3", "user_id": "u1"})],
                       next_offsets={1: 10})  # fmt: skip
    recovered = decode_state(encode_state(state))
    again = Outbox().recovered(_held(recovered), committed={1: 10}, reading_from={1: 10})
    assert again == sent
    assert [value for *_, value in again] == [orjson.dumps(_trigger("u1", 1)), b'{"event_id":"u1:3","user_id":"u1"}']


def test_a_state_without_outputs_encodes_none_and_old_records_still_read():
    assert decode_state(encode_state(UserState())).outbox is None
    record = UserState().to_record()[:7]  # schema 6: no outbox element
    record[0] = 6
    assert UserState.from_record(record).outbox is None


def test_the_mark_is_one_past_the_next_offset_and_only_a_commit_that_reaches_it_proves_delivery():
    """The message at the next offset is read after the send; the commit that covers it flushed the send."""
    state, outbox = UserState(applied=(0, 41)), Outbox()
    outbox.hold({"u": state}, [("trigger", _trigger("u", 1))], next_offsets={0: 42})
    assert state.outbox[0][2] == 43
    assert len(Outbox().recovered(_held(state), committed={0: 42}, reading_from={0: 42})) == 1
    assert Outbox().recovered(_held(state), committed={0: 43}, reading_from={0: 43}) == []
    assert len(Outbox().recovered(_held(state), committed={}, reading_from={0: 0})) == 1  # never committed


def test_proven_outputs_leave_the_state_when_it_next_holds_others_and_unproven_ones_stay():
    state, outbox = UserState(applied=(0, 1)), Outbox()
    outbox.hold({"u": state}, [("trigger", _trigger("u", 1))], next_offsets={0: 2})  # mark 3
    outbox.committed({0: 2})
    outbox.hold({"u": state}, [("trigger", _trigger("u", 2))], next_offsets={0: 5})  # mark 6
    assert [entry[1]["event_id"] for entry in state.outbox] == ["u:cart_abandon:1", "u:cart_abandon:2"]

    outbox.committed({0: 3})
    outbox.hold({"u": state}, [("trigger", _trigger("u", 3))], next_offsets={0: 7})
    assert [entry[1]["event_id"] for entry in state.outbox] == ["u:cart_abandon:2", "u:cart_abandon:3"]


def test_an_entry_without_a_mark_is_sent_again_and_then_proven_by_a_commit_past_where_reading_resumed():
    """Schema 7 held [kind, output]; a state written before the marks still has its outputs sent."""
    state = UserState(applied=(2, 7), outbox=[["trigger", _trigger("u", 1)]])
    state = UserState.from_record([7, *decode_state(encode_state(state)).to_record()[1:]])
    outbox = Outbox()
    assert len(outbox.recovered(_held(state), committed={2: 50}, reading_from={2: 50})) == 1
    outbox.hold({"u": state}, [("trigger", _trigger("u", 2))], next_offsets={2: 55})
    assert len(state.outbox) == 2  # the resend is not proven until a commit past 50
    outbox.committed({2: 51})
    outbox.hold({"u": state}, [("trigger", _trigger("u", 3))], next_offsets={2: 57})
    assert [entry[1]["event_id"] for entry in state.outbox] == ["u:cart_abandon:2", "u:cart_abandon:3"]


def test_a_revoked_partition_proves_nothing_until_its_next_recovery():
    state, outbox = UserState(applied=(3, 1)), Outbox()
    outbox.hold({"u": state}, [("trigger", _trigger("u", 1))], next_offsets={3: 2})
    outbox.committed({3: 10})
    outbox.forget({3})
    outbox.hold({"u": state}, [("trigger", _trigger("u", 2))], next_offsets={3: 11})
    assert len(state.outbox) == 2


def _confirmed(outbox: Outbox, delivered: bool = True) -> None:
    async def flushed() -> bool:
        return delivered

    asyncio.run(outbox.confirm(flushed))


def test_delivered_outputs_on_a_partition_with_every_read_offset_committed_settle_at_once():
    """A trigger fired by the idle advance: no commit passes its mark until the next click."""
    clock = iter([1.0, 2.0, 3.0]).__next__
    state, outbox = UserState(applied=(0, 9)), Outbox(grace_s=60.0, clock=clock)
    outbox.hold({"u": state}, [("trigger", _trigger("u", 1))], next_offsets={0: 10})  # at 1.0, mark 11
    outbox.committed({0: 10})
    assert outbox.to_settle({0: 10}) == []  # not confirmed yet
    _confirmed(outbox)  # began at 2.0
    assert not outbox.settled(0, state.outbox)
    assert outbox.to_settle({0: 10}) == ["u"]
    assert outbox.to_settle({0: 10}) == []  # it left the register


def test_outputs_a_commit_is_about_to_prove_wait_out_the_grace_and_failed_deliveries_confirm_nothing():
    times = iter([1.0, 2.0, 3.0, 20.0])
    outbox = Outbox(grace_s=10.0, clock=lambda: next(times))
    a, b = UserState(applied=(0, 9)), UserState(applied=(0, 11))
    outbox.hold({"a": a}, [("trigger", _trigger("a", 1))], next_offsets={0: 10})  # at 1.0
    outbox.hold({"b": b}, [("trigger", _trigger("b", 1))], next_offsets={0: 12})  # at 2.0
    outbox.committed({0: 10})  # read up to 12: a commit is coming
    _confirmed(outbox, delivered=False)  # at 3.0: a delivery failed
    assert outbox.to_settle({0: 12}) == []
    _confirmed(outbox)  # at 20.0
    assert outbox.to_settle({0: 13}) == ["a", "b"]  # held more than grace_s before it


def test_a_commit_past_the_mark_settles_a_state_with_no_write():
    state, outbox = UserState(applied=(0, 9)), Outbox()
    outbox.hold({"u": state}, [("trigger", _trigger("u", 1))], next_offsets={0: 10})
    outbox.committed({0: 11})
    assert outbox.settled(0, state.outbox)


def test_a_state_read_to_be_written_again_drops_its_proven_outputs_and_keeps_the_rest():
    state, outbox = UserState(applied=(0, 9)), Outbox()
    outbox.hold({"u": state}, [("trigger", _trigger("u", 1))], next_offsets={0: 10})  # mark 11
    outbox.hold({"u": state}, [("trigger", _trigger("u", 2))], next_offsets={0: 20})  # mark 21
    outbox.committed({0: 11})
    assert [entry[1]["event_id"] for entry in outbox.pruned(state).outbox] == ["u:cart_abandon:2"]
    outbox.committed({0: 21})
    assert outbox.pruned(state).outbox is None
    assert outbox.pruned(None) is None


def test_a_proven_user_who_comes_back_or_whose_partition_moves_is_not_written_out():
    now = [0.0]
    outbox = Outbox(idle_s=10.0, clock=lambda: now[0])
    for user in ("back", "moved", "quiet"):
        outbox.proven(1 if user == "moved" else 0, user)
    back = UserState(applied=(0, 5))
    outbox.hold({"back": back}, [("trigger", {"event_id": "back:hot_lead:1", "user_id": "back"})], next_offsets={0: 6})
    outbox.forget([1])
    now[0] = 10.0
    assert outbox.to_write_out(100, {}) == ["quiet"]
    outbox.proven(0, "back")  # proven again later: due idle_s after that
    assert outbox.to_write_out(100, {}) == []
    now[0] = 20.0
    assert outbox.to_write_out(100, {}) == ["back"]


def test_the_write_out_yields_to_a_busy_partition_and_keeps_to_its_budget():
    now = [0.0]
    outbox = Outbox(idle_s=1.0, clock=lambda: now[0])
    for n in range(40):
        outbox.proven(n % 2, f"u{n:02d}")  # partition 0: even, 1: odd
        now[0] += 0.01
    now[0] = 5.0
    outbox.committed({0: 10})
    busy = {0: 10, 1: 10}  # partition 1 has read offsets not yet committed
    assert outbox.to_write_out(10, busy) == [f"u{n:02d}" for n in range(0, 20, 2)]  # oldest first
    assert outbox.to_write_out(10, busy) == [f"u{n:02d}" for n in range(20, 40, 2)]
    assert outbox.to_write_out(10, busy) == ["u01"]  # the busy partition: a tenth of the budget
    outbox.committed({0: 12})
    assert outbox.to_write_out(20, {0: 12, 1: 12}) == ["u03", "u05"]  # still busy: a tenth of 20
    outbox.committed({1: 12})
    assert outbox.to_write_out(100, {0: 12, 1: 12}) == [f"u{n:02d}" for n in range(7, 40, 2)]  # caught up: the rest


def test_recovered_states_with_proven_outputs_are_written_out_too():
    now = [0.0]
    proven, pending = UserState(applied=(0, 10)), UserState(applied=(0, 30))
    Outbox().hold({"p": proven}, [("trigger", _trigger("p", 1))], next_offsets={0: 11})  # mark 12
    Outbox().hold({"q": pending}, [("trigger", _trigger("q", 1))], next_offsets={0: 31})  # mark 32
    outbox = Outbox(idle_s=5.0, clock=lambda: now[0])
    again = outbox.recovered(_held(proven, pending), committed={0: 20}, reading_from={0: 20})
    assert [key for _, _, key, _ in again] == [b"q"]
    now[0] = 5.0
    assert outbox.to_write_out(100, {}) == ["p"]  # "q" is sent again, and settled as usual
