"""Deliveries to webhook subscribers: first attempts, retries, dead letters and disabled endpoints.

Independent of Faust: the agents hand it events and retry records, and give it
``retry`` and ``dead_letter`` callables that write to the retry topics and to
``webhooks-dlq``. A delivery record is plain JSON:

    {"subscriber", "webhook_id", "event", "attempts", "not_before", "last_error"}

Retry number ``n`` goes to retry level ``n`` (its own topic), so the records of
one level are due in about the order they arrive. After ``max_attempts``
attempts, a non-retryable status, or a disabled endpoint (HTTP 410), the record
goes to the dead-letter topic with its reason. After ``BREAKER_FAILURES`` retryable
failures in a row, an endpoint's first attempts go to retry level 1 without being
sent, so a dead endpoint does not hold every batch of first attempts for its timeout;
retries still send, and the first success closes the breaker.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from app.core.events.decode import format_ts
from app.core.webhooks import DELIVERED, DISABLE, RETRY, Subscriber, backoff_s, body_of
from app.webhooks.delivery import Attempt

log = logging.getLogger(__name__)

Record = dict[str, Any]
BREAKER_FAILURES = 5


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_s: float = 10.0  # the first retry waits up to this long; each next one up to twice as long
    max_s: float = 3_600.0  # no wait is longer, a Retry-After included

    @property
    def levels(self) -> int:
        return self.max_attempts - 1


class Dispatcher:
    """Sends events to the subscribers that want them, and decides what happens on failure."""

    def __init__(
        self,
        subscribers: Iterable[Subscriber],
        attempt: Callable[[Subscriber, str, bytes], Awaitable[Attempt]],
        retry: Callable[[int, Record], Awaitable[None]],  # (level, record): to that level's topic
        dead_letter: Callable[[Record], Awaitable[None]],
        *,
        policy: RetryPolicy = RetryPolicy(),
        in_flight: int = 16,  # concurrent attempts per subscriber
        observe: Callable[[str], None] = lambda outcome: None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.subscribers = {s.name: s for s in subscribers}
        self.policy = policy
        self._attempt, self._retry, self._dead_letter = attempt, retry, dead_letter
        self._observe, self._clock, self._rng = observe, clock, rng
        self._limits = {name: asyncio.Semaphore(in_flight) for name in self.subscribers}
        self.disabled: dict[str, str] = {}  # subscriber -> why (until the worker restarts)
        # Circuit breaker: after BREAKER_FAILURES retryable failures in a row, first attempts
        # go straight to retry level 1 unsent; retries still send, and a success closes it.
        self._failures: dict[str, int] = {}

    async def deliver(self, events: Iterable[dict[str, Any]]) -> None:
        """First attempts for every (event, subscriber) pair wanted, concurrently."""
        records = [
            {"subscriber": s.name, "webhook_id": e["event_id"], "event": e, "attempts": 0, "not_before": 0.0,
             "last_error": None}
            for e in events for s in self.subscribers.values() if s.wants(e)
        ]  # fmt: skip
        await asyncio.gather(*(self.attempt(record, first=True) for record in records))

    async def attempt(self, record: Record, *, first: bool = False) -> None:
        """One attempt of ``record``; then it is delivered, scheduled again, or dead-lettered."""
        subscriber = self.subscribers.get(record["subscriber"])
        if subscriber is None:
            return await self._give_up(record, "subscriber no longer configured")
        if subscriber.name in self.disabled:
            return await self._give_up(record, self.disabled[subscriber.name])
        result = self._short_circuit(subscriber.name) if first else None
        if result is None:
            async with self._limits[subscriber.name]:
                result = await self._attempt(subscriber, record["webhook_id"], body_of(record["event"]))
            self._record(subscriber.name, result)
        record = {**record, "attempts": record["attempts"] + 1, "last_error": None if result.outcome == DELIVERED else result.detail}
        if result.outcome == DELIVERED:
            self._observe("delivered")
        elif result.outcome == DISABLE:
            self.disabled[subscriber.name] = f"endpoint disabled: {result.detail} (410 Gone)"
            log.warning("webhook %s answered 410 Gone: disabled until restart", subscriber.name)
            self._observe("disabled")
            await self._give_up(record, self.disabled[subscriber.name])
        elif result.outcome == RETRY and record["attempts"] < self.policy.max_attempts:
            level = record["attempts"]  # retry n goes to level n
            wait = backoff_s(level, self.policy.base_s, self.policy.max_s,
                             min(result.retry_after, self.policy.max_s) if result.retry_after else None,
                             self._rng)  # fmt: skip
            self._observe("retried")
            await self._retry(level, {**record, "not_before": self._clock() + wait})
        else:
            why = result.detail if result.outcome != RETRY else f"{result.detail} after {record['attempts']} attempts"
            await self._give_up(record, why)

    def _short_circuit(self, name: str) -> Attempt | None:
        """A failed first attempt without sending, while the endpoint keeps failing; None: send it."""
        failures = self._failures.get(name, 0)
        if failures < BREAKER_FAILURES:
            return None
        return Attempt(RETRY, None, f"not sent: the endpoint failed its last {failures} attempts (circuit open)")

    def _record(self, name: str, result: Attempt) -> None:
        if result.outcome == RETRY:
            self._failures[name] = self._failures.get(name, 0) + 1
        else:
            self._failures.pop(name, None)

    async def _give_up(self, record: Record, reason: str) -> None:
        self._observe("dead_lettered")
        await self._dead_letter({**record, "reason": reason, "failed_at": format_ts(self._clock())})
