"""The users still to re-decide under the newest fit, taken a bounded number at a time.

A user's segment is decided at their own events, by the model of that moment. A
refit can find better segments, but a user who sends nothing more would keep the
segment an earlier, weaker model gave them, and memberships would lag the model
(on a Kafka stream whose partitions are read at unequal rates, the users of the
partition read first are decided by the first fits: ARI 0.72 of memberships
against 0.999 of the final model's own assignment). So each new fit starts a
sweep over every user, and each batch re-decides the next few of them
(:meth:`app.core.engine.process.Engine.redecide`): the work after a fit is spread over
batches rather than stalling one, and a newer fit restarts the sweep, since only
the newest model counts.

>>> sweep = RefitSweep()
>>> sweep.start(["u1", "u2", "u3"])
>>> sweep.take(2), len(sweep), sweep.take(2), sweep.take(2)
(['u1', 'u2'], 1, ['u3'], [])
"""

from __future__ import annotations

from collections.abc import Iterable


class RefitSweep:
    """A queue of user ids, restarted by every new fit."""

    def __init__(self) -> None:
        self._queue: list[str] = []
        self._next = 0

    def start(self, users: Iterable[str]) -> None:
        """Re-decide ``users`` from now on, in this order; drops the sweep in progress."""
        self._queue = list(users)
        self._next = 0

    def take(self, n: int) -> list[str]:
        """The next ``n`` users (fewer at the end), each once per sweep."""
        taken = self._queue[self._next : self._next + n]
        self._next += len(taken)
        if self._next >= len(self._queue):
            self.clear()
        return taken

    def clear(self) -> None:
        self._queue, self._next = [], 0

    def __len__(self) -> int:
        return len(self._queue) - self._next
