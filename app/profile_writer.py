"""Keeps the profile store up to date, off the clicks path.

The clicks agent only marks which users changed (:meth:`ProfileWriter.mark`); the
``write_profiles`` task calls :meth:`ProfileWriter.flush` every 0.25 s, which builds their profiles from the
current state and writes them in one pipelined round trip per chunk. A user
marked several times before a flush is written once, with their latest state.

When the store fails or times out, the users stay marked and the writer backs
off (doubling, up to ``max_backoff_s``); the clicks keep flowing, and the backlog
(``segstream_profile_backlog``) is written when the store is back. The backlog is
bounded by the users this worker owns, not by the events it has seen.

>>> import asyncio
>>> from app.core.profile import InMemoryProfileStore
>>> store = InMemoryProfileStore()
>>> writer = ProfileWriter(store, build=lambda user: {"user_id": user, "seq": 1, "segment": "c1", "rules": []})
>>> writer.mark(["u1", "u2", "u1"])
>>> asyncio.run(writer.flush(now=0.0)), sorted(store.profiles)
(2, ['u1', 'u2'])
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from app.core.profile import ProfileStore

log = logging.getLogger(__name__)


class ProfileWriter:
    """Marked users -> profiles in the store, with bounded retries and a visible backlog."""

    def __init__(
        self,
        store: ProfileStore,
        build: Callable[[str], dict[str, Any] | None],
        *,
        chunk: int = 250,  # users per round trip; building them holds the event loop (~4 ms)
        max_backoff_s: float = 5.0,
        observe: Callable[[str, float], None] = lambda outcome, value: None,
    ) -> None:
        self.store = store
        self.build = build
        self.chunk = chunk
        self.max_backoff_s = max_backoff_s
        self._observe = observe  # (metric, value): "written", "refused", "error", "seconds", "backlog"
        self._marked: dict[str, None] = {}  # users to write, oldest mark first
        self._erased: dict[str, None] = {}  # users to remove from the store, before any write
        self._backoff_s = 0.0
        self._retry_at = 0.0

    @property
    def backlog(self) -> int:
        return len(self._marked)

    def mark(self, user_ids: Iterable[str]) -> None:
        marked = self._marked
        for user_id in user_ids:
            marked[user_id] = None

    def erase(self, user_ids: Iterable[str]) -> None:
        """Remove these users from the store at the next flush; a later mark writes them anew."""
        for user_id in user_ids:
            self._marked.pop(user_id, None)
            self._erased[user_id] = None

    async def flush(self, *, now: float | None = None) -> int:
        """Write the users marked so far, a chunk per round trip; returns how many were written.

        Stops at the first failure: those users stay marked, and the next flush
        waits out the backoff first.
        """
        now = time.monotonic() if now is None else now
        if now < self._retry_at:
            return 0
        if self._erased and not await self._erase(now):
            return 0
        done, left = 0, len(self._marked)  # users marked during the flush wait for the next one
        while self._marked and left > 0:
            # Taken out before the write: a user marked again meanwhile is written again.
            users = [user for user, _ in zip(self._marked, range(min(self.chunk, left)))]
            left -= len(users)
            for user_id in users:
                del self._marked[user_id]
            profiles = [p for p in map(self.build, users) if p is not None]  # None: the user is gone
            started = time.perf_counter()
            try:
                written, refused = await self.store.write(profiles)
            except Exception as exc:  # any store failure: keep the users, retry later
                self.mark(users)
                self._fail(now, exc, "write")
                break
            self._observe("seconds", time.perf_counter() - started)
            self._observe("written", written)
            self._observe("refused", refused)
            self._backoff_s = 0.0
            done += written
        self._observe("backlog", len(self._marked))
        return done

    async def _erase(self, now: float) -> bool:
        """Remove the erased users from the store; False (they wait, with the backoff) if it failed."""
        users = list(self._erased)
        try:
            await self.store.erase(users)
        except Exception as exc:  # any store failure: retry later, before any write
            self._fail(now, exc, "erase")
            return False
        for user_id in users:
            self._erased.pop(user_id, None)
        return True

    def _fail(self, now: float, exc: Exception, what: str) -> None:
        self._backoff_s = min(self.max_backoff_s, max(0.1, 2 * self._backoff_s))
        self._retry_at = now + self._backoff_s
        self._observe("error", 1)
        log.warning("profile store %s failed (%s); %d users wait, retry in %.1fs",
                    what, type(exc).__name__, len(self._marked) + len(self._erased), self._backoff_s)  # fmt: skip
