"""The profile materialiser: the user-state changelog, followed, into the profile store.

A profile is a view of a user's state, and the changelog holds every state the
workers wrote, in order. The materialiser reads it in a consumer group of its own
(``{app_id}-profiles``), writes each batch's users to the store, and commits the
batch's offsets only once the store has taken all of them. After a crash, a
rebalance or a store outage it resumes from the last batch written: every profile
catches up by itself, with no rebuild. While the store fails, the batch is retried
with a doubling backoff (``max_backoff_s`` at most) and the records wait in Kafka.

It runs in the worker by default (``profiles``); with ``materialise_in_worker
= false`` it runs as ``segstream profiles follow``, a process of its own, and the
clicks agent spends nothing on profiles. Several of them share the changelog's
partitions as one group.

Per batch, each user's records decide (:func:`profile_updates`):

- the latest, when it is a live state: its profile is written; the store keeps
  the one with the larger ``seq``, so a batch read again after a crash changes nothing;
- a tombstone (erased) or a withdrawal of consent anywhere in the batch: the profile
  and its index entries go first. A state written after it starts its ``seq`` anew,
  below the old profile's, and could not replace it otherwise.

>>> from app.core.state.user import UserState
>>> from tables.codecs import encode_state
>>> live, gone = encode_state(UserState()), encode_state(UserState().withdrawal())
>>> updates = profile_updates([(b"u1", live), (b"u2", live), (b"u2", None), (b"u3", gone), (b"u2", live)])
>>> updates.erase, [user for user, _ in updates.write]
(['u2', 'u3'], ['u1', 'u2'])
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import IllegalStateError, KafkaError

from app.core.features import FeatureConfig
from app.core.profiles.profile import ProfileStore, build_profile
from app.core.segments.model import ModelSnapshot
from app.core.state.user import UserState
from app.kafka.follow import ConsumerService, bootstrap_servers, until_listed
from tables.codecs import decode_state

log = logging.getLogger(__name__)



@dataclass
class ProfileUpdates:
    """What one batch of changelog records asks of the store: erasures first, then writes."""

    erase: list[str] = field(default_factory=list)
    write: list[tuple[str, UserState]] = field(default_factory=list)


def profile_updates(records: Iterable[tuple[bytes, bytes | None]]) -> ProfileUpdates:
    """Changelog records (key, value; None for a tombstone) in offset order -> store updates."""
    latest: dict[bytes, UserState | None] = {}
    erased: dict[str, None] = {}
    for key, value in records:
        state = None if value is None else decode_state(value)
        if state is None or state.withdrawn:
            erased[key.decode()] = None
        latest[key] = state
    updates = ProfileUpdates(erase=list(erased))
    for key, state in latest.items():
        if state is not None and not state.withdrawn:
            updates.write.append((key.decode(), state))
    return updates


class ProfileMaterialiser(ConsumerService):
    """Follows the user-state changelog in a group of its own; commits a batch once the store has it."""

    def __init__(
        self, *, bootstrap: str, topic: str, group: str, store: ProfileStore,
        model: Callable[[], ModelSnapshot | None], features: FeatureConfig,
        max_records: int = 2_000, max_backoff_s: float = 5.0,
        observe: Callable[[str, float], None] = lambda what, value: None, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        self.store, self.model, self.features = store, model, features
        self.max_records, self.max_backoff_s = max_records, max_backoff_s
        self._observe = observe  # (what, value): "written", "refused", "error", "seconds", "backlog"
        self._next: dict[Any, int] = {}  # partition -> the offset after the last record written
        self.batches = 0  # batches written

    def consumer_options(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap, "group_id": self.group, "enable_auto_commit": False,
                "auto_offset_reset": "earliest"}  # a new group starts from the oldest state: every profile

    async def follow(self, consumer: AIOKafkaConsumer) -> None:
        if not await until_listed(consumer, self.topic, self):  # Faust creates the changelog at start
            return
        consumer.subscribe([self.topic])
        while not self.should_stop:
            fetched = await consumer.getmany(timeout_ms=500, max_records=self.max_records)
            if fetched:
                records = [(r.key, r.value) for batch in fetched.values() for r in batch]
                await self._write_until_done(profile_updates(records))
                offsets = {tp: batch[-1].offset + 1 for tp, batch in fetched.items()}
                self._next.update(offsets)
                self.batches += 1
                await self._commit(offsets)
            self._observe("backlog", self._lag())

    async def _commit(self, offsets: dict[Any, int]) -> None:
        try:
            await self._consumer.commit(offsets)
        except (IllegalStateError, KafkaError) as exc:
            # A rebalance took partitions (their new owner writes the batch again), or the broker
            # is away (the next batch's commit covers this one): either way nothing is lost.
            log.info("profile materialiser: commit not taken (%s: %s)", type(exc).__name__, exc)

    async def _write_until_done(self, updates: ProfileUpdates) -> None:
        """Apply the batch, retrying the store with backoff until it takes it (or the service stops)."""
        backoff_s = 0.0
        while True:
            try:
                await self.apply(updates)
                return
            except Exception as exc:  # any store failure: the same batch again, later
                backoff_s = min(self.max_backoff_s, max(0.1, 2 * backoff_s))
                self._observe("error", 1)
                self._observe("backlog", self._lag())  # this batch included: it is not in _next yet
                log.warning("profile store failed (%s: %s); %d profiles wait, retry in %.1fs",
                            type(exc).__name__, exc, len(updates.write) + len(updates.erase), backoff_s)  # fmt: skip
                await self.sleep(backoff_s)
                if self.should_stop:
                    raise asyncio.CancelledError

    async def apply(self, updates: ProfileUpdates) -> None:
        if updates.erase:
            await self.store.erase(updates.erase)
        if not updates.write:
            return
        now, model = time.time(), self.model()
        profiles = [build_profile(user, state, model, self.features, updated_at=now) for user, state in updates.write]
        started = time.perf_counter()
        written, refused = await self.store.write(profiles)
        self._observe("seconds", time.perf_counter() - started)
        self._observe("written", written)
        self._observe("refused", refused)

    @classmethod
    def from_settings(cls, settings: Any, store: ProfileStore, model: Callable[[], ModelSnapshot | None],
                      **kwargs: Any) -> ProfileMaterialiser:  # fmt: skip
        return cls(bootstrap=bootstrap_servers(settings.broker), topic=settings.state_changelog,
                   group=f"{settings.app_id}-profiles", store=store, model=model,
                   features=settings.engine.features, **kwargs)  # fmt: skip

    def _lag(self) -> int:
        """Changelog records not yet written, over this member's partitions (as of the last fetch)."""
        if self._consumer is None:
            return 0
        lag = 0
        for tp in self._consumer.assignment():
            end = self._consumer.highwater(tp)
            if end is not None:
                lag += max(0, end - self._next.get(tp, 0))
        return lag
