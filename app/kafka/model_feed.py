"""Follow one-partition topics in every worker: the model on ``segment-model``, drifts on ``segment-drift``.

Each worker reads the whole topic outside any consumer group (a broadcast), so
all of them predict with the same, newest model whatever partitions they own.
Keys of the compacted ``segment-model``: ``current`` holds the model snapshot
(JSON), ``learner`` the learner's checkpoint (pickle) so a restarted learner
resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from app.kafka.follow import ConsumerService, bootstrap_servers, until_listed

log = logging.getLogger(__name__)

CURRENT = b"current"
LEARNER = b"learner"


class TopicFollower(ConsumerService):
    """Every record of a one-partition topic, from its beginning, to ``on_record``; then new ones as they come."""

    def __init__(self, broker: str, topic: str, on_record: Callable[[ConsumerRecord], None], **kwargs) -> None:
        super().__init__(**kwargs)
        self.broker = broker
        self.topic = topic
        self.on_record = on_record
        self.caught_up = asyncio.Event()

    def consumer_options(self) -> dict[str, Any]:
        return {"bootstrap_servers": bootstrap_servers(self.broker), "enable_auto_commit": False, "group_id": None}

    async def follow(self, consumer: AIOKafkaConsumer) -> None:
        partition = TopicPartition(self.topic, 0)
        if not await until_listed(consumer, self.topic, self):
            return
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        if end == 0:
            self.caught_up.set()
        while not self.should_stop:
            batches = await consumer.getmany(partition, timeout_ms=500)
            for record in batches.get(partition, ()):
                self.on_record(record)
                if record.offset + 1 >= end:
                    self.caught_up.set()
            if not self.caught_up.is_set() and await consumer.position(partition) >= end:
                self.caught_up.set()


class ModelFeed(TopicFollower):
    """The latest value per key of a one-partition compacted topic."""

    def __init__(self, broker: str, topic: str, **kwargs) -> None:
        super().__init__(broker, topic, self._keep, **kwargs)
        self.latest: dict[bytes, bytes] = {}

    def _keep(self, record: ConsumerRecord) -> None:
        self.latest[record.key] = record.value
