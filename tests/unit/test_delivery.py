"""The delivery guard: one failed output, or one failed batch, stops every commit and the worker."""

from __future__ import annotations

import asyncio

import pytest

from app.kafka.delivery import DeliveryGuard


async def test_a_failed_delivery_stops_every_commit_and_the_worker():
    stopped = []
    guard = DeliveryGuard(stop=lambda: stopped.append(True))
    loop = asyncio.get_running_loop()
    delivered, refused, pending = loop.create_future(), loop.create_future(), loop.create_future()
    for future in (delivered, refused, pending):
        guard.track(future)
    delivered.set_result(None)
    assert guard.may_commit() and not stopped
    refused.set_exception(RuntimeError("MessageSizeTooLargeError"))
    assert not guard.may_commit()
    assert stopped == [True]
    with pytest.raises(RuntimeError, match="MessageSizeTooLarge"):
        guard.raise_failed()  # the next send raises instead of sending more
    assert not guard.may_commit() and stopped == [True]  # the stop is asked once


async def test_a_batch_that_raises_fails_the_worker_and_later_batches_are_passed_over():
    stopped, ran = [], []
    guard = DeliveryGuard(stop=lambda: stopped.append(True))

    async def batch(name, fail=False):
        ran.append(name)
        if fail:
            raise TypeError("Integer exceeds 64-bit range")

    await guard.run(batch("first"), "the clicks agent")
    await guard.run(batch("second", fail=True), "the clicks agent")
    await guard.run(batch("third"), "the clicks agent")
    assert ran == ["first", "second"]
    assert stopped == [True] and not guard.may_commit()


async def test_a_cancellation_is_not_a_failure():
    guard = DeliveryGuard(stop=lambda: None)

    async def stopping():
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await guard.run(stopping(), "the clicks agent")
    assert guard.may_commit()


async def test_delivered_after_a_flush_sees_the_failures_the_flush_reported():
    """The erasure agent and the outbox both ask this before they let go of an output's source."""
    guard = DeliveryGuard(stop=lambda: None)
    sent = asyncio.get_running_loop().create_future()
    guard.track(sent)

    async def flush() -> None:
        sent.set_exception(RuntimeError("MessageSizeTooLargeError"))  # the broker refuses during the flush

    assert await DeliveryGuard(stop=lambda: None).delivered_after(lambda: asyncio.sleep(0)) is True
    assert await guard.delivered_after(flush) is False
