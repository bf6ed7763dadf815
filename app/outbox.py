"""The outbox: a batch's outputs stay in its users' states until the broker has confirmed them.

A batch writes each touched user's state to the changelog, then sends the segment
changes, triggers and erasure notices it caused. Kafka makes neither atomic with the other: a worker
killed between them leaves states on the changelog whose outputs never reached
their topics, and a restarted worker skips the redelivered messages as applied. One
of two workers killed under load lost 29 triggers that way
(tests/faults/test_rebalance.py), and an output the broker refused was lost the same
way after the restart.

So each output also goes into its user's state (``UserState.outbox``), in the same
changelog record, which lands whole or not at all:

- **confirm**: every second the producer is flushed; when it has delivered all that
  was sent before the flush began, and no delivery failed, those outputs are
  confirmed, and their users' states are written again without them;
- **recover**: after a restart or a rebalance, each state of the partitions a worker
  now owns that still holds outputs sends them again: the same ids and the same
  bytes, so a sink that deduplicates by ``event_id`` sees each output once.

An output is a dict that orjson writes, reads and writes again to the same bytes.

>>> from app.core.state import UserState
>>> outbox, state = Outbox(clock=iter([1.0, 5.0]).__next__), UserState(applied=(2, 40))
>>> outbox.hold({"u1": state}, [("trigger", {"event_id": "u1:hot_lead:1", "user_id": "u1"})])
[('trigger', 2, b'u1', b'{"event_id":"u1:hot_lead:1","user_id":"u1"}')]
>>> state.outbox, outbox.confirmed_users()
([['trigger', {'event_id': 'u1:hot_lead:1', 'user_id': 'u1'}]], [])
>>> import asyncio
>>> asyncio.run(outbox.confirm(flushed=lambda: asyncio.sleep(0, result=True)))  # began at 5.0
>>> outbox.confirmed_users()
['u1']
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

import orjson

from app.core.state import UserState


class Outbox:
    """Which users hold unconfirmed outputs in their states, and since when.

    An output's kind names its topic: ``change`` (segment-changes), ``trigger``
    (triggers) or ``erasure`` (erased-users).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[str, tuple[float, int]] = {}  # user -> (newest output held at, partition)
        self.confirmed_at = -math.inf  # everything sent before this time was delivered

    def __len__(self) -> int:
        return len(self._held)

    def hold(
        self, touched: dict[str, UserState], outputs: Iterable[tuple[str, dict[str, Any]]]
    ) -> list[tuple[str, int, bytes, bytes]]:
        """Put each (kind, output) into its user's state; returns (kind, partition, key, value) to send."""
        now, records = self._clock(), []
        for kind, output in outputs:
            state = touched[output["user_id"]]
            if state.outbox is None:
                state.outbox = []
            state.outbox.append([kind, output])
            records.append(self._record(now, state.applied[0], kind, output))
        return records

    def recovered(self, held: Iterable[list]) -> list[tuple[str, int, bytes, bytes]]:
        """The outputs held in recovered states (``[kind, output]`` with the state's partition), to send again."""
        now = self._clock()
        return [self._record(now, partition, kind, output) for partition, (kind, output) in held]

    def _record(self, now: float, partition: int, kind: str, output: dict[str, Any]) -> tuple[str, int, bytes, bytes]:
        """Register ``output`` as held since ``now``; the (kind, partition, key, value) record that sends it."""
        self._held[output["user_id"]] = (now, partition)
        return kind, partition, output["user_id"].encode(), orjson.dumps(output)

    async def confirm(self, flushed: Callable[[], Awaitable[bool]]) -> None:
        """``flushed()`` flushes the producer and says whether every delivery succeeded
        (``DeliveryGuard.delivered_after``); if so, what was sent before it began is confirmed."""
        started = self._clock()
        if await flushed():
            self.confirmed_at = max(self.confirmed_at, started)

    def confirmed_users(self) -> list[str]:
        """Users all of whose held outputs are confirmed; they leave the register (their states still say so)."""
        done = [user for user, (at, _) in self._held.items() if at < self.confirmed_at]
        for user in done:
            del self._held[user]
        return done

    def forget(self, partitions: Collection[int]) -> None:
        """Partitions this worker no longer owns: their next owner sends their outputs again."""
        for user in [user for user, (_, partition) in self._held.items() if partition in partitions]:
            del self._held[user]
