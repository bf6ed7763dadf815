"""Which users have a trigger deadline, and when: a heap over the users' own state.

The deadlines themselves live in each user's state (``Signals.due`` and the open
cart), which the changelog makes durable. This index only says whom to look at
when the watermark moves; a worker rebuilds it from its table after a restart
or a rebalance.

>>> index = DeadlineIndex()
>>> index.schedule("u1", 100.0); index.schedule("u2", 50.0); index.schedule("u1", 80.0)
>>> index.pop_due(90.0), index.pop_due(90.0), len(index)
(['u2', 'u1'], [], 0)
"""

from __future__ import annotations

import heapq


class DeadlineIndex:
    """A heap of ``(due_ts, user_id)``; an entry is live while it is the user's latest."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._scheduled)

    def schedule(self, user_id: str, due_ts: float | None) -> None:
        """The user's earliest deadline is now ``due_ts`` (None: none)."""
        if due_ts is None:
            self._scheduled.pop(user_id, None)
        elif self._scheduled.get(user_id) != due_ts:
            self._scheduled[user_id] = due_ts
            heapq.heappush(self._heap, (due_ts, user_id))

    def pop_due(self, watermark: float, *, inclusive: bool = False) -> list[str]:
        """Users whose deadline the watermark has passed (or reached, if inclusive)."""
        due = []
        heap = self._heap
        while heap and (heap[0][0] < watermark or (inclusive and heap[0][0] <= watermark)):
            due_ts, user_id = heapq.heappop(heap)
            if self._scheduled.get(user_id) == due_ts:
                del self._scheduled[user_id]
                due.append(user_id)
        return due

    def clear(self) -> None:
        self._heap.clear()
        self._scheduled.clear()
