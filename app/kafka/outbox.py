"""The outbox: a batch's outputs stay in its users' states until they are proven delivered.

A batch writes each touched user's state to the changelog, then sends the segment
changes, triggers and erasure notices it caused. Kafka makes neither atomic with the other: a worker
killed between them leaves states on the changelog whose outputs never reached
their topics, and a restarted worker skips the redelivered messages as applied. One
of two workers killed under load lost 29 triggers that way
(tests/faults/test_rebalance.py), and an output the broker refused was lost the same
way after the restart.

So each output also goes into its user's state (``UserState.outbox``), in the same
changelog record, which lands whole or not at all, with a *mark*: an offset of the
user's clicks partition. Faust flushes the producer before every commit, and the
worker's consumer refuses a commit once any delivery failed (app/kafka/delivery.py), so a
committed offset at or past the mark proves the output delivered:

- **mark**: one past the next offset to read when the output is held. The message
  at that next offset is read, and acked, only after the send; the commit that
  covers it flushes the send first;
- **recover**: after a restart or a rebalance, each held output of the partitions
  a worker now owns whose mark the committed offset (where reading resumes) has not
  reached is sent again: the same ids and the same bytes, so a sink that
  deduplicates by ``event_id`` sees each output once;
- **prune**: outputs proven delivered leave the state the next time it is written.
  Under load a commit proves them within a commit interval, and the state is not
  written again only to drop them: the changelog carries one record per state write,
  not two;
- **settle**: a commit cannot prove what was held after the last message read was
  committed, such as a trigger the idle advance fired on a quiet partition: no commit
  passes its mark until the next click. Once the broker has confirmed every output
  sent before a flush (app/kafka/delivery.py), the users whose outputs no commit has proven
  by then, on a partition with every read offset committed or ``grace_s`` after they
  were held, are written again without them, so a restart does not send them twice;
- **write out**: outputs a commit has proven stay in the state of a user who does not
  come back, and a segment change carries the features it read: under load that made
  the mean state 1.8 times as large. A user whose held outputs are all proven, and who
  has been quiet for ``idle_s`` since, is written once without them.

An output is a dict that orjson writes, reads and writes again to the same bytes.

>>> from app.core.state.user import UserState
>>> outbox, state = Outbox(), UserState(applied=(2, 40))
>>> outbox.hold({"u1": state}, [("trigger", {"event_id": "u1:hot_lead:1", "user_id": "u1"})], next_offsets={2: 41})
[('trigger', 2, b'u1', b'{"event_id":"u1:hot_lead:1","user_id":"u1"}')]
>>> state.outbox
[['trigger', {'event_id': 'u1:hot_lead:1', 'user_id': 'u1'}, 42]]
>>> held = [(2, entry) for entry in state.outbox]
>>> len(outbox.recovered(held, committed={2: 41}, reading_from={2: 41}))  # not proven: sent again
1
>>> outbox.recovered(held, committed={2: 42}, reading_from={2: 42})       # proven delivered
[]
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any

import orjson

from app.core.state.user import UserState

Record = tuple[str, int, bytes, bytes]  # (kind, partition, key, value) for send_outputs


class Outbox:
    """The committed offsets that prove held outputs delivered, per clicks partition.

    An output's kind names its topic: ``change`` (segment-changes), ``trigger``
    (triggers) or ``erasure`` (erased-users). An entry of ``UserState.outbox`` is
    ``[kind, output, mark]``; entries written before marks (schema 7) have none.
    """

    def __init__(
        self, grace_s: float = 10.0, idle_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.grace_s, self.idle_s, self._clock = grace_s, idle_s, clock
        self._committed: dict[int, int] = {}  # partition -> an offset known committed (a lower bound)
        self._resumed: dict[int, int] = {}  # partition -> where reading resumed at the latest recovery
        self._held: dict[int, dict[str, float]] = {}  # partition -> user -> newest output held at, oldest first
        self._proven_at: dict[int, dict[str, float]] = {}  # partition -> user -> all proven since, oldest first
        self.confirmed_at = -math.inf  # everything sent before this time was delivered

    def hold(
        self, touched: dict[str, UserState], outputs: Iterable[tuple[str, dict[str, Any]]],
        next_offsets: Mapping[int, int],
    ) -> list[Record]:  # fmt: skip
        """Put each (kind, output) into its user's state, marked one past its partition's next offset
        to read (``next_offsets``); drops the entries already proven. Returns the records to send."""
        records, pruned, now = [], set(), self._clock()
        for kind, output in outputs:
            state = touched[output["user_id"]]
            partition = state.applied[0]
            if id(state) not in pruned:
                pruned.add(id(state))
                state.outbox = [entry for entry in state.outbox or () if not self._proven(partition, entry)]
            next_offset = next_offsets.get(partition)
            state.outbox.append([kind, output, None if next_offset is None else next_offset + 1])
            records.append(self._register(now, partition, kind, output))
        return records

    def pruned(self, state: UserState | None) -> UserState | None:
        """``state``, about to be written again, without the held outputs a commit has proven (in place)."""
        if state is not None and state.outbox:
            partition = state.applied[0]
            state.outbox = [entry for entry in state.outbox if not self._proven(partition, entry)] or None
        return state

    def recovered(
        self, held: Iterable[tuple[int, list]], committed: Mapping[int, int], reading_from: Mapping[int, int],
    ) -> list[Record]:  # fmt: skip
        """Held entries of recovered states, (partition, entry), whose marks the ``committed`` offsets
        have not reached: the records to send again, before reading resumes at ``reading_from``.
        The users of the proven ones are written out like any others (:meth:`to_write_out`)."""
        self.committed(committed)
        self._resumed.update(reading_from)
        now, records = self._clock(), []
        for partition, entry in held:
            if not self._proven(partition, entry):
                records.append(self._register(now, partition, entry[0], entry[1]))
            elif entry[1]["user_id"] not in self._held.get(partition, ()):
                self.proven(partition, entry[1]["user_id"])
        return records

    def committed(self, offsets: Mapping[int, int]) -> None:
        """Offsets of clicks partitions that a commit has taken (or where reading resumed)."""
        for partition, offset in offsets.items():
            if offset > self._committed.get(partition, -1):
                self._committed[partition] = offset

    async def confirm(self, delivered_after: Callable[[], Awaitable[bool]]) -> None:
        """``delivered_after`` flushes the producer and says whether every delivery succeeded
        (DeliveryGuard.delivered_after); if so, what was sent before the flush is confirmed."""
        started = self._clock()
        if await delivered_after():
            self.confirmed_at = max(self.confirmed_at, started)

    def to_settle(self, next_offsets: Mapping[int, int]) -> list[str]:
        """Users whose held outputs are all confirmed and whom no commit is about to prove: those on
        a partition whose every read offset (``next_offsets``) is committed, and those held more than
        ``grace_s`` before the confirmation. They leave the register; see :meth:`settled`."""
        users: list[str] = []
        for partition, held in self._held.items():
            before = self.confirmed_at if self._caught_up(partition, next_offsets) else self.confirmed_at - self.grace_s
            due = []
            for user, at in held.items():  # oldest first
                if at >= before:
                    break
                due.append(user)
            for user in due:
                del held[user]
            users += due
        return users

    def proven(self, partition: int, user: str) -> None:
        """Every held output of ``user`` is proven: write them out once the user has been quiet ``idle_s``."""
        self._proven_at.setdefault(partition, {})[user] = self._clock()

    def to_write_out(self, budget: int, next_offsets: Mapping[int, int]) -> list[str]:
        """Up to ``budget`` users, oldest first in each partition, whose outputs were all proven
        ``idle_s`` ago with no output held since; they leave the register. Users written again
        since have none left to drop.

        The write-out yields to the clicks: the partitions with read offsets not yet committed
        (``next_offsets``; they are busy) give at most a tenth of ``budget`` between them. With
        a full budget under load, where nearly every user sent one message, it wrote up to 1.3
        times the states, and one of two runs side by side fell to 0.69 of the throughput (the
        other ran at 1.03).

        >>> now = [0.0]
        >>> outbox = Outbox(idle_s=60.0, clock=lambda: now[0])
        >>> outbox.proven(0, "u1"); now[0] = 30.0; outbox.proven(0, "u2")
        >>> outbox.to_write_out(10, {}), (now.__setitem__(0, 61.0), outbox.to_write_out(10, {}))[1]
        ([], ['u1'])
        """
        users: list[str] = []
        before, busy_left = self._clock() - self.idle_s, budget // 10
        for partition, register in self._proven_at.items():
            busy = not self._caught_up(partition, next_offsets)
            share = min(budget - len(users), busy_left if busy else budget)
            due = []
            for user, at in register.items():
                if at > before or len(due) >= share:
                    break
                due.append(user)
            for user in due:
                del register[user]
            users += due
            busy_left -= len(due) if busy else 0
        return users

    def _caught_up(self, partition: int, next_offsets: Mapping[int, int]) -> bool:
        """Every offset read from ``partition`` is committed."""
        return self._committed.get(partition, -1) >= next_offsets.get(partition, math.inf)

    def settled(self, partition: int, entries: list | None) -> bool:
        """Whether a commit has proven every one of a state's held outputs."""
        return all(self._proven(partition, entry) for entry in entries or ())

    def forget(self, partitions: Collection[int]) -> None:
        """Partitions this worker no longer reads; their next owner proves their outputs."""
        for partition in partitions:
            self._committed.pop(partition, None)
            self._resumed.pop(partition, None)
            self._held.pop(partition, None)
            self._proven_at.pop(partition, None)

    def _register(self, now: float, partition: int, kind: str, output: dict[str, Any]) -> Record:
        """Register ``output`` as held since ``now``; the record that sends it."""
        self._proven_at.get(partition, {}).pop(output["user_id"], None)  # to be proven again
        held = self._held.setdefault(partition, {})
        held.pop(output["user_id"], None)  # to the end: the register stays in order of time
        held[output["user_id"]] = now
        return kind, partition, output["user_id"].encode(), orjson.dumps(output)

    def _proven(self, partition: int, entry: list) -> bool:
        mark = entry[2] if len(entry) > 2 else None
        if mark is None:  # no mark (schema 7, or no offset known): as if held when reading last resumed
            resumed = self._resumed.get(partition)
            mark = None if resumed is None else resumed + 1
        return mark is not None and self._committed.get(partition, -1) >= mark

