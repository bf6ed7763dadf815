"""Send many records as whole Kafka record batches, one per partition.

Faust's ``send`` builds several objects per message; at tens of thousands of
records a second that is most of the worker's budget. Records queued here go
through Faust's own aiokafka producer, so Faust's flush before every offset
commit still covers them, and their deliveries are tracked by app/kafka/delivery.py's
guard, which stops a commit past a failed one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaProducer

from app.kafka.delivery import DeliveryGuard, guard


class BatchSender:
    """Queues (partition, key, value) records; their deliveries are tracked by ``deliveries``."""

    def __init__(
        self, on_sent: Callable[[str, int], None] = lambda topic, records: None, deliveries: DeliveryGuard = guard
    ) -> None:
        self._deliveries = deliveries
        self._on_sent = on_sent  # (topic, records queued): Faust's sensor does not see these sends

    async def send(
        self, producer: AIOKafkaProducer, topic: str, records: Iterable[tuple[int, bytes, bytes | None]]
    ) -> None:
        """Queue (partition, key, value) records (None: a tombstone); the guard tracks their deliveries."""
        self._deliveries.raise_failed()  # no more records after a failed one
        batches: dict[int, object] = {}
        queued = 0
        for partition, key, value in records:
            batch = batches.get(partition) or producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
                self._deliveries.track(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
            batches[partition] = batch
            queued += 1
        for partition, batch in batches.items():
            self._deliveries.track(await producer.send_batch(batch, topic, partition=partition))
        if queued:
            self._on_sent(topic, queued)
