"""The delivery guard: states follow their outputs, in order, and nothing follows a failed output."""

from __future__ import annotations

import asyncio

from app.delivery import DeliveryGuard


def _guard(stopped: list) -> DeliveryGuard:
    return DeliveryGuard(stop=lambda: stopped.append(True), max_in_flight=2)


async def test_a_state_is_written_only_after_its_outputs_are_delivered():
    written, stopped = [], []
    guard = _guard(stopped)
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()

    async def write(name):
        written.append(name)

    await guard.after([first], lambda: write("batch 1"))
    await guard.after([second], lambda: write("batch 2"))
    second.set_result(None)  # the later batch's outputs land first: its state still waits its turn
    await asyncio.sleep(0)
    assert written == []
    first.set_result(None)
    await guard.settle()
    assert written == ["batch 1", "batch 2"]
    assert guard.may_commit() and not stopped


async def test_a_failed_output_stops_the_states_behind_it_and_every_commit():
    written, stopped = [], []
    guard = _guard(stopped)
    loop = asyncio.get_running_loop()
    refused, fine = loop.create_future(), loop.create_future()

    async def write(name):
        written.append(name)

    await guard.after([refused], lambda: write("batch 1"))
    await guard.after([fine], lambda: write("batch 2"))
    refused.set_exception(RuntimeError("MessageSizeTooLargeError"))
    fine.set_result(None)
    await guard.settle()
    assert written == []  # neither state reached the changelog: a restart processes both again
    assert not guard.may_commit()
    assert stopped == [True]
    assert "MessageSizeTooLargeError" in repr(guard.failure)


async def test_a_failed_state_write_is_a_failure_too():
    stopped = []
    guard = _guard(stopped)

    async def write():
        raise ConnectionError("changelog unwritable")

    await guard.after([], write)
    await guard.settle()
    assert not guard.may_commit() and stopped == [True]


async def test_at_most_max_in_flight_batches_wait_for_their_outputs():
    guard = _guard([])
    loop = asyncio.get_running_loop()
    pending = [loop.create_future() for _ in range(3)]

    async def nothing():
        return None

    await guard.after([pending[0]], nothing)
    await guard.after([pending[1]], nothing)
    third = asyncio.ensure_future(guard.after([pending[2]], nothing))
    await asyncio.sleep(0.01)
    assert not third.done()  # two in flight: the agent waits
    for future in pending[:2]:
        future.set_result(None)
    await asyncio.wait_for(third, 1.0)
    pending[2].set_result(None)
    await guard.settle()
