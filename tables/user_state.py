"""``user_to_state``: one value per user (feature state + membership), written once per batch.

Faust writes a table key as one message through its producer buffer, which
costs about 100 µs here (DESIGN.md). :class:`UserStateCache` keeps decoded
states in memory in front of the table and writes each batch's changed users to
the table's changelog as whole Kafka record batches (app/kafka/record_batches.py).
Offsets stay safe: the records are queued before the batch's events are acked,
and Faust flushes the producer before every offset commit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping

import faust
import orjson

from app import metrics
from app.core.state.user import UserState, partition_in, pending_in, segment_in
from app.kafka.record_batches import BatchSender
from app.kafka.topics import compacted_user_data
from app.settings import Settings
from tables.codecs import RAW_SCHEMA, decode_state, encode_state

TABLE = "user_to_state"  # with the app id, a storage schema: it names the changelog


def user_state_table(app: faust.App, settings: Settings):
    """``user_to_state`` on ``app``: its changelog is compacted and co-partitioned with the clicks."""
    return app.Table(
        TABLE,
        partitions=settings.partitions,
        schema=RAW_SCHEMA,
        key_type=bytes,  # Faust picks the changelog's serializers from these, not from the schema
        value_type=bytes,
        # An erased user's older records go within user_data_retention_s.
        extra_topic_configs=compacted_user_data(settings),
        help="Per-user feature state and segment membership (tables.codecs.encode_state).",
    )


class UserStateCache:
    """Decoded user states in front of ``user_to_state``; bounded, least recently used out.

    Built once per worker: it drops its cached states when partitions are revoked.
    """

    def __init__(self, app: faust.App, table, max_users: int) -> None:
        self.app = app
        self.table = table
        self.max_users = max_users
        self._states: OrderedDict[str, UserState] = OrderedDict()
        self._sender = BatchSender(on_sent=metrics.count_sent)
        app.on_partitions_revoked.connect(self._forget_revoked)

    def ready(self) -> bool:
        """The tables have recovered this worker's partitions from their changelogs."""
        return not self.app.in_recovery and self.app.tables.recovery.completed.is_set()

    async def _forget_revoked(self, app, revoked, **kwargs) -> None:  # noqa: ARG002 - Faust signal signature
        self.clear()

    def get(self, user_id: str) -> UserState | None:
        state = self._states.get(user_id)
        if state is not None:
            self._states.move_to_end(user_id)
            return state
        return self.stored(user_id)  # recovered from the changelog

    def stored(self, user_id: str) -> UserState | None:
        """The state as last written (before the batch in progress), decoded afresh."""
        raw = self._local().get(user_id.encode())
        return None if raw is None else decode_state(raw)

    def _local(self):
        # The memory store wraps a plain dict; its Mapping.get costs ~3 µs a miss.
        store = self.table.data
        inner = getattr(store, "data", None)
        return inner if isinstance(inner, dict) else store

    def _owned_records(self, partitions: Collection[int]) -> Iterator[tuple[bytes, list]]:
        """(key, parsed record) of every stored state on ``partitions``, each record parsed once.

        The store also holds standby copies of other workers' partitions; they are skipped.
        """
        for key, raw in self._local().items():
            record = orjson.loads(raw)
            if partition_in(record) in partitions:
                yield key, record

    def reindex(
        self, deadlines, triggers, partitions: Collection[int], on_record: Callable[[bytes, list], None]
    ) -> int:
        """Index the pending deadlines of the users on ``partitions``, and pass their keys and records to ``on_record``.

        Runs after a rebalance's recovery: the deadlines and memberships live in the
        states, which the changelog restored. Only states on this worker's active
        partitions count: the store also holds standby copies of other workers'
        partitions. Each record is parsed once; only states with an open cart or a due
        entry are decoded whole. Returns how many users got a deadline.
        """
        scheduled = 0
        for key, record in self._owned_records(partitions):
            on_record(key, record)
            if not pending_in(record):  # no open cart, nothing due
                continue
            user_id = key.decode()
            state = self._states.get(user_id) or UserState.from_record(record)  # decoded once
            due = state.signals.next_due(triggers)
            if due is not None:
                deadlines.schedule(user_id, due)
                scheduled += 1
        return scheduled

    def members_of(self, segments: Collection[str], partitions: Collection[int]) -> list[tuple[str, UserState]]:
        """The users on ``partitions`` whose cluster segment is one of ``segments``, with their states.

        A scan of the store (one parse a record); only the members are decoded whole.
        """
        members = []
        for key, record in self._owned_records(partitions):
            if segment_in(record) not in segments:
                continue
            user_id = key.decode()
            members.append((user_id, self._states.get(user_id) or UserState.from_record(record)))
        return members

    def forget(self, users: Collection[str]) -> None:
        """Drop the cached states of ``users``: they are read from the store again, as last written."""
        for user in users:
            self._states.pop(user, None)

    def user_ids(self) -> list[str]:
        """Every user in the local store, standby copies of other workers' partitions included."""
        return [key.decode() for key in self._local().keys()]

    def clear(self) -> None:
        """Forget cached states (partitions moved): the table is the truth again."""
        self._states.clear()

    async def write(
        self, touched: dict[str, UserState], encoded: Mapping[str, bytes] | None = None,
        withdrawn: Collection[str] = (),
    ) -> int:  # fmt: skip
        """Write every touched state to the local store and the changelog; returns bytes written.

        ``encoded`` holds states already encoded, by user: those bytes are written.
        ``withdrawn``: users who withdrew consent in this batch. One who gave it again
        later in the batch gets a withdrawal record before the new state, so the
        changelog's readers (the profile materialiser) see the withdrawal too.

        A state goes to the partition of the last message it applied (``state.applied``):
        the changelog is co-partitioned with the clicks.
        """
        local, partition_of = self._local(), getattr(self.table.data, "_key_partition", None)
        records = []
        written = 0
        encoded = encoded or {}
        for user_id in withdrawn:
            state = touched.get(user_id)
            if state is not None and not state.withdrawn:
                records.append((state.applied[0], user_id.encode(), encode_state(state.withdrawal())))
        for user_id, state in touched.items():
            value = encoded.get(user_id) or encode_state(state)
            key, partition = user_id.encode(), state.applied[0]
            written += len(value)
            local[key] = value
            if partition_of is not None:
                partition_of[key] = partition  # lets the store drop keys of revoked partitions
            self._remember(user_id, state)
            records.append((partition, key, value))
        producer = self.app.producer._ensure_producer()  # Faust's own aiokafka producer
        await self._sender.send(producer, self.table.changelog_topic.get_topic_name(), records)
        return written

    async def erase(self, users: Mapping[str, int]) -> None:
        """Delete the states of ``users`` (user id -> their partition): from the store, the cache,
        and the changelog (a tombstone).

        Compaction then removes the user's older records from the changelog; a
        recovering worker drops the key as soon as it reads the tombstone.
        """
        local, partition_of = self._local(), getattr(self.table.data, "_key_partition", None)
        records = []
        for user_id, partition in users.items():
            key = user_id.encode()
            local.pop(key, None)
            if partition_of is not None:
                partition_of.pop(key, None)
            self._states.pop(user_id, None)
            records.append((partition, key, None))
        producer = self.app.producer._ensure_producer()
        await self._sender.send(producer, self.table.changelog_topic.get_topic_name(), records)

    def _remember(self, user_id: str, state: UserState) -> None:
        self._states[user_id] = state
        self._states.move_to_end(user_id)
        while len(self._states) > self.max_users:
            self._states.popitem(last=False)

