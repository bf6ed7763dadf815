"""Event-time watermark with allowed lateness.

The watermark is the event time below which the stream considers itself complete:
the largest event time seen minus the allowed lateness. An event older than the
watermark is *late*: it is counted, and it changes no window.

>>> wm = Watermark(allowed_lateness_s=600)
>>> wm.observe(1_000.0)
>>> wm.current
400.0
>>> wm.is_late(500.0), wm.is_late(399.0)
(False, True)
"""

from __future__ import annotations

import math


class Watermark:
    """Largest event time seen, less ``allowed_lateness_s``; it never moves back."""

    __slots__ = ("allowed_lateness_s", "max_ts")

    def __init__(self, allowed_lateness_s: float, max_ts: float = -math.inf) -> None:
        self.allowed_lateness_s = allowed_lateness_s
        self.max_ts = max_ts

    @property
    def current(self) -> float:
        return self.max_ts - self.allowed_lateness_s

    def is_late(self, ts: float) -> bool:
        return ts < self.max_ts - self.allowed_lateness_s

    def observe(self, ts: float) -> None:
        if ts > self.max_ts:
            self.max_ts = ts

    def advance_to(self, ts: float) -> None:
        """Declare the stream complete up to ``ts`` (end of a replay, idle advance)."""
        self.observe(ts + self.allowed_lateness_s)
