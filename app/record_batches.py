"""Send many records as whole Kafka record batches, one per partition.

Faust's ``send`` builds several objects per message; at tens of thousands of
records a second that is most of the worker's budget. Records queued here go
through Faust's own aiokafka producer, so Faust's flush before every offset
commit still covers them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaProducer


class BatchSender:
    """Queues (partition, key, value) records; remembers delivery futures to surface failures."""

    def __init__(self, on_sent: Callable[[str, int], None] = lambda topic, records: None) -> None:
        self._pending: list[asyncio.Future] = []
        self._on_sent = on_sent  # (topic, records queued): Faust's sensor does not see these sends

    async def send(self, producer: AIOKafkaProducer, topic: str, records: Iterable[tuple[int, bytes, bytes]]) -> None:
        self.raise_failed()
        batches: dict[int, object] = {}
        queued = 0
        for partition, key, value in records:
            batch = batches.get(partition) or producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
                self._pending.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
            batches[partition] = batch
            queued += 1
        for partition, batch in batches.items():
            self._pending.append(await producer.send_batch(batch, topic, partition=partition))
        if queued:
            self._on_sent(topic, queued)

    def raise_failed(self) -> None:
        """Raise the first failed delivery: the agent must stop before acking more offsets."""
        still_pending = []
        for future in self._pending:
            if not future.done():
                still_pending.append(future)
            elif future.exception() is not None:
                raise future.exception()
        self._pending = still_pending
