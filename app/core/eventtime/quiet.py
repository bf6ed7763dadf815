"""Which input partitions are *known* to be quiet, and up to when the stream is complete.

"No click arrived for a while" has two causes: the producers stopped, or the worker
stopped hearing from the broker. Only the first may move event time, so a partition
counts as quiet only on the broker's word: a fetch that succeeded recently and
reported a log end (high watermark) no further than what this worker has processed.
While the broker is unreachable no fetch succeeds, nothing is confirmed, and the
watermark stays where the delivered events put it. A broker outage then fires no
deadline that a replay of the same events would not.

A partition is quiet once the broker has confirmed it without a break for
``idle_after_s``, the time allowed for an event to reach the broker. After an outage
the producers have that long to deliver what they held back before the silence
counts. The stream as a whole is complete up to the oldest of the partitions' latest
confirmations, less ``idle_after_s``.

>>> quiet = QuietPartitions(idle_after_s=30.0)
>>> quiet.assigned([0, 1], now=1000.0)
>>> quiet.resumed({0: 10, 1: 0})              # after recovery: the next offsets to read
>>> quiet.processed(0, offset=10, now=1000.0)
>>> def fetch_each_second(start, end, log_ends):
...     for at in range(start, end):
...         for partition, log_end in log_ends.items():
...             quiet.fetched(partition, log_end, at=float(at))
>>> fetch_each_second(1000, 1041, {0: 11, 1: 0})
>>> sorted(quiet.idle(now=1041.0))
[0, 1]
>>> sorted(quiet.caught_up(now=1041.0))        # nothing unread, on a fetch 1 s old
[0, 1]
>>> quiet.complete_until(now=1041.0)         # the oldest latest confirmation, 30 s back
1010.0
>>> quiet.complete_until(now=1060.0) is None  # no fetch for 20 s: the broker may be down
True
>>> fetch_each_second(1061, 1062, {0: 11, 1: 3})  # back, and 3 clicks of partition 1 unread
>>> sorted(quiet.idle(now=1061.5))           # 0 is confirmed again, but not yet for 30 s
[]
>>> fetch_each_second(1062, 1092, {0: 11, 1: 3})
>>> sorted(quiet.idle(now=1092.0))
[0]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType

# aiokafka long-polls a caught-up partition for at most fetch_max_wait_ms (1.5 s in
# Faust), so a reachable broker confirms it at least that often; older than this, it
# may not be reachable.
FRESH_FETCH_S = 10.0


class QuietPartitions:
    """Per partition: the next offset to process, the last click, and the last fetch's report."""

    __slots__ = ("idle_after_s", "fresh_fetch_s", "_next_offset", "_last_click", "_caught_up_at", "_caught_up_since")

    def __init__(self, idle_after_s: float, fresh_fetch_s: float = FRESH_FETCH_S) -> None:
        self.idle_after_s = idle_after_s
        self.fresh_fetch_s = fresh_fetch_s
        self._next_offset: dict[int, int] = {}
        self._last_click: dict[int, float] = {}
        self._caught_up_at: dict[int, float] = {}  # wall time of the latest fetch that saw nothing unread
        self._caught_up_since: dict[int, float] = {}  # start of the unbroken run of such fetches

    @property
    def next_offsets(self) -> Mapping[int, int]:
        """Per partition, the next offset to process (read-only)."""
        return MappingProxyType(self._next_offset)

    @property
    def partitions(self) -> set[int]:
        return set(self._next_offset) | set(self._last_click)

    def assigned(self, partitions: Iterable[int], now: float) -> None:
        """New partitions: silent from ``now`` on, and not confirmed until a fetch says so."""
        for partition in partitions:
            self._last_click.setdefault(partition, now)

    def resumed(self, offsets: Mapping[int, int]) -> None:
        """Where reading resumes after a recovery: nothing before these offsets is left to process."""
        for partition, offset in offsets.items():
            if offset > self._next_offset.get(partition, -1):
                self._next_offset[partition] = offset

    def processed(self, partition: int, offset: int, now: float) -> None:
        """The message at ``offset`` was processed at wall time ``now``."""
        self._last_click[partition] = now
        if offset + 1 > self._next_offset.get(partition, -1):
            self._next_offset[partition] = offset + 1

    def fetched(self, partition: int, log_end: int | None, at: float | None) -> None:
        """A successful fetch at wall time ``at`` reported the partition's log end (None: no fetch yet)."""
        if log_end is None or at is None:
            return
        next_offset = self._next_offset.get(partition)
        if next_offset is None or log_end > next_offset:
            self._caught_up_since.pop(partition, None)  # unread clicks: not quiet
            return
        previous = self._caught_up_at.get(partition)
        if previous is None or at - previous > self.fresh_fetch_s or partition not in self._caught_up_since:
            self._caught_up_since[partition] = at  # a new run, after a gap or unread clicks
        self._caught_up_at[partition] = max(at, previous or at)

    def caught_up(self, now: float) -> set[int]:
        """Partitions whose latest fetch, recent enough to trust, found nothing unread."""
        return {
            partition
            for partition in self._caught_up_since
            if now - self._caught_up_at[partition] <= self.fresh_fetch_s
        }

    def idle(self, now: float) -> set[int]:
        """Partitions with no click, and nothing unread as fetches confirm without a break, for ``idle_after_s``."""
        return {
            partition
            for partition, seen in self._last_click.items()
            if now - seen >= self.idle_after_s
            and now - self._caught_up_at.get(partition, -math.inf) <= self.fresh_fetch_s
            and now - self._caught_up_since.get(partition, math.inf) >= self.idle_after_s
        }

    def complete_until(self, now: float) -> float | None:
        """Wall time up to which the whole stream is complete; None unless every partition is idle."""
        partitions = self._last_click
        if not partitions or self.idle(now) != set(partitions):
            return None
        return min(self._caught_up_at[partition] for partition in partitions) - self.idle_after_s

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions this worker no longer reads."""
        for partition in partitions:
            self._next_offset.pop(partition, None)
            self._last_click.pop(partition, None)
            self._caught_up_at.pop(partition, None)
            self._caught_up_since.pop(partition, None)
