"""Event-time watermark with allowed lateness, tracked per input partition.

The watermark is the event time below which the stream considers itself complete.
Each partition's progress is the largest event time it has delivered; the stream
is only as far as its slowest partition, so the watermark is the smallest of
those, less the allowed lateness. A worker reading four partitions unevenly
then fires a deadline no earlier than a single ordered file (``replay``) would.
A partition the worker declares idle stops holding the watermark back. A partition
newly assigned holds it back from the start, until it delivers, is declared idle, or
is confirmed to have nothing unread: otherwise the partitions read first would fire
deadlines of users whose later events (a purchase that saves the cart) the new one has
not delivered yet. One that was read to its end before the rebalance delivers nothing
more, and would hold the watermark for good without that confirmation.

>>> wm = Watermark(allowed_lateness_s=600)
>>> wm.observe(1_000.0, partition=0)
>>> wm.current
400.0
>>> wm.observe(5_000.0, partition=1)
>>> wm.current, wm.max_ts
(400.0, 5000.0)
>>> wm.set_idle({0})
>>> wm.current
4400.0
>>> wm.is_late(4_000.0)
True
>>> wm.hold([2])                              # assigned in a rebalance, nothing delivered yet
>>> wm.current
-inf
>>> wm.observe(4_800.0, partition=2)
>>> wm.current
4200.0
>>> wm.hold([3])                              # assigned, and already read to its end
>>> wm.caught_up([1, 3])                      # the broker: nothing unread on 1 and 3
[3]
>>> wm.current
4200.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable


class Watermark:
    """Per-partition largest event time; the smallest of them, less ``allowed_lateness_s``."""

    __slots__ = ("allowed_lateness_s", "_progress", "_idle", "_complete")

    def __init__(self, allowed_lateness_s: float) -> None:
        self.allowed_lateness_s = allowed_lateness_s
        self._progress: dict[int, float] = {}
        self._idle: set[int] = set()
        self._complete = -math.inf  # declared complete up to here (end of input, idle stream)

    @property
    def max_ts(self) -> float:
        """The largest event time seen on any partition."""
        return max(self._progress.values(), default=-math.inf)

    @property
    def current(self) -> float:
        active = [ts for partition, ts in self._progress.items() if partition not in self._idle]
        slowest = min(active) if active else self.max_ts
        return max(slowest - self.allowed_lateness_s, self._complete)

    def is_late(self, ts: float) -> bool:
        return ts < self.current

    def observe(self, ts: float, partition: int = 0) -> None:
        if ts > self._progress.get(partition, -math.inf):
            self._progress[partition] = ts
        self._idle.discard(partition)

    def hold(self, partitions: Iterable[int]) -> None:
        """Partitions this worker now reads: each holds the watermark until it delivers (or goes idle)."""
        for partition in partitions:
            self._progress.setdefault(partition, -math.inf)

    def caught_up(self, partitions: Iterable[int]) -> list[int]:
        """Partitions with nothing unread, on the broker's word. Those still held since their
        assignment have nothing to deliver and stop holding; returns them."""
        released = [partition for partition in partitions if self._progress.get(partition) == -math.inf]
        for partition in released:
            del self._progress[partition]
        return released

    def set_idle(self, partitions: Iterable[int]) -> None:
        """Partitions that have delivered nothing for a while; they stop holding the watermark."""
        self._idle = set(partitions) & set(self._progress)

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions this worker no longer reads (a rebalance moved them)."""
        for partition in partitions:
            self._progress.pop(partition, None)
            self._idle.discard(partition)

    def advance_to(self, ts: float) -> None:
        """Declare the stream complete up to ``ts`` (end of a replay, an idle stream)."""
        self._complete = max(self._complete, ts)
