"""Finish a batch's work before a cancellation reaches the agent's loop, and ack nothing unseen.

Faust's ``stream.take`` and ``take_events`` ack a batch's events when the agent
leaves its ``async for`` body, and a cancellation (a graceful stop, a rebalance)
leaves it too: the generator's ``finally`` acks events whose work was cut off,
and their offsets get committed. Work on a batch must therefore finish, or be put
back on a topic, before the cancellation propagates (:func:`finish_before_cancel`).

A second trap: ``take`` turns the stream's own acks off while it runs and, in its
``finally``, back to what they were. The stream keeps draining in the background
until it stops, so events that reach it after ``take`` has ended are acked without
having been seen: their offsets are committed, and a restart skips them (3 of 10
pending webhook retries, in ``tests/faults/test_webhooks_restart.py``).
:func:`batches` turns the acks off before ``take`` starts, so it restores them off.

>>> import asyncio
>>> done = []
>>> async def work():
...     await asyncio.sleep(0.05)
...     done.append("batch written")
>>> async def agent():
...     task = asyncio.ensure_future(finish_before_cancel(work()))
...     await asyncio.sleep(0.01)
...     task.cancel()  # the worker stops mid-batch
...     try:
...         await task
...     except asyncio.CancelledError:
...         return done
>>> asyncio.run(agent())
['batch written']
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


async def finish_before_cancel(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even if this task is cancelled meanwhile; then re-raise the cancel."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task  # a second cancel interrupts this one: a forced stop is not waited for
        raise


def batches(stream: Any, size: int, within: float, *, events: bool = False) -> AsyncIterator[Sequence[Any]]:
    """``stream.take(size, within)`` (``take_events`` with ``events``) that acks only what it yielded."""
    stream.enable_acks = False  # take() restores this when it ends: off, not on (see the module)
    return stream.take_events(size, within=within) if events else stream.take(size, within=within)
