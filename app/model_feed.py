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

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from mode import Service

log = logging.getLogger(__name__)

CURRENT = b"current"
LEARNER = b"learner"


def bootstrap_servers(broker: str) -> str:
    """``kafka://host:port;kafka://…`` (Faust's form) -> ``host:port,…`` (aiokafka's)."""
    return ",".join(part.split("://", 1)[-1] for part in broker.replace(";", ",").split(","))


async def until_listed(consumer: AIOKafkaConsumer, topic: str, service: Service) -> bool:
    """Wait until the broker lists ``topic`` (the worker creates its topics at start); False if ``service`` stops."""
    while not service.should_stop:
        if topic in await consumer.topics():  # a fresh metadata request each time
            return True
        await asyncio.sleep(0.5)
    return False


class TopicFollower(Service):
    """Every record of a one-partition topic, from its beginning, to ``on_record``; then new ones as they come."""

    def __init__(self, broker: str, topic: str, on_record: Callable[[ConsumerRecord], None], **kwargs) -> None:
        super().__init__(**kwargs)
        self.broker = broker
        self.topic = topic
        self.on_record = on_record
        self.caught_up = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(self.broker), enable_auto_commit=False, group_id=None
        )
        await self._consumer.start()
        self.add_future(self._follow())

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def _follow(self) -> None:
        consumer = self._consumer
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
