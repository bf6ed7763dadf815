"""Small Kafka helpers for ``bench kafka``: topics, offsets, reading a topic whole.

Everything talks to the broker on loopback only.
"""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

BOOTSTRAP = "127.0.0.1:9092"
BROKER = f"kafka://{BOOTSTRAP}"


class Kafka:
    """An admin client and an unassigned consumer (no group) for metadata and offsets."""

    async def __aenter__(self) -> Kafka:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        await self.admin.start()
        self.consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False)
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def create_topic(self, name: str, partitions: int) -> None:
        await self.admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])

    async def delete_topics(self, prefix: str) -> list[str]:
        names = [name for name in await self.admin.list_topics() if name.startswith(prefix)]
        if names:
            await self.admin.delete_topics(names)
        return names

    async def partitions(self, topic: str) -> list[TopicPartition] | None:
        """The topic's partitions, or None while it does not exist."""
        await self.consumer._client.force_metadata_update()
        found = self.consumer.partitions_for_topic(topic)
        return None if not found else [TopicPartition(topic, p) for p in sorted(found)]

    async def end_offsets(self, topic: str) -> dict[int, int] | None:
        tps = await self.partitions(topic)
        if tps is None:
            return None
        return {tp.partition: offset for tp, offset in (await self.consumer.end_offsets(tps)).items()}

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        """The group's committed offsets on ``topic`` (partitions without a commit are absent)."""
        offsets = await self.admin.list_consumer_group_offsets(group)
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


async def read_topic(topic: str, on_record: Callable[[object], None]) -> int:
    """Call ``on_record`` for every record of ``topic`` up to its current end; return the count."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False, max_partition_fetch_bytes=4 << 20
    )
    await consumer.start()
    try:
        found = consumer.partitions_for_topic(topic)
        if not found:
            await consumer._client.force_metadata_update()
            found = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(found)]
        if not tps:
            return 0
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        count = 0
        while todo:
            batches = await consumer.getmany(*todo, timeout_ms=1_000, max_records=10_000)
            for records in batches.values():
                for record in records:
                    on_record(record)
                count += len(records)
            for tp in list(todo):
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
        return count
    finally:
        await consumer.stop()

