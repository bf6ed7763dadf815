"""Read a Kafka topic from its start to the end it has now, outside any consumer group.

For commands that rebuild from a topic (``segstream profiles rebuild``) or re-send
what it holds (``segstream webhooks replay``); they commit nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any


async def read_to_end(bootstrap: str, topic: str) -> AsyncIterator[Any]:
    """Every record of ``topic`` up to its current end offsets, partition by partition."""
    from aiokafka import AIOKafkaConsumer

    # Subscribed without a group: the consumer owns every partition, and commits nothing.
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")  # fmt: skip
    await consumer.start()
    try:
        partitions = sorted(consumer.assignment())
        if not partitions:
            return
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batches = await consumer.getmany(*partitions, timeout_ms=1_000, max_records=10_000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp]:
                        yield record
    finally:
        await consumer.stop()


async def latest_by_key(bootstrap: str, topic: str) -> dict[bytes, bytes | None]:
    """Each key's latest value in ``topic`` (None: a tombstone), as compaction would keep it."""
    return {record.key: record.value async for record in read_to_end(bootstrap, topic)}
