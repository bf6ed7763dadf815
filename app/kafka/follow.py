"""The plumbing of a service that follows Kafka topics with an aiokafka consumer of its own.

The model feed (app/kafka/model_feed.py) and the profile materialiser
(app/redis/materialiser.py) each own one consumer: started with the service,
stopped with it, and read by one future that waits for its topic to be listed.

>>> bootstrap_servers("kafka://127.0.0.1:9092;kafka://127.0.0.1:9093")
'127.0.0.1:9092,127.0.0.1:9093'
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer
from mode import Service


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


class ConsumerService(Service):
    """A service that owns one consumer, made from :meth:`consumer_options`, and reads it in :meth:`follow`."""

    _consumer: AIOKafkaConsumer | None = None

    def consumer_options(self) -> dict[str, Any]:
        raise NotImplementedError

    async def follow(self, consumer: AIOKafkaConsumer) -> None:
        """Read ``consumer`` until the service stops."""
        raise NotImplementedError

    async def on_start(self) -> None:
        self._consumer = AIOKafkaConsumer(**self.consumer_options())
        await self._consumer.start()
        self.add_future(self.follow(self._consumer))

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
