"""Finish a batch's work before a cancellation reaches the agent's loop.

Faust's ``stream.take`` and ``take_events`` ack a batch's events when the agent
leaves its ``async for`` body, and a cancellation (a graceful stop, a rebalance)
leaves it too: the generator's ``finally`` acks events whose work was cut off,
and their offsets get committed. Work on a batch must therefore finish, or be put
back on a topic, before the cancellation propagates.

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
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def finish_before_cancel(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even if this task is cancelled meanwhile; then re-raise the cancel."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task  # a second cancel interrupts this one: a forced stop is not waited for
        raise
