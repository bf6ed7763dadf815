"""``deliver_webhooks``: segment changes, triggers and erasure notices to the configured webhook subscribers.

Its own agents, on the published topics: a slow or dead endpoint delays its own
deliveries, never the clicks. First attempts run concurrently for a batch;
failures go to retry topic ``webhooks-retry-<n>`` for retry ``n``, whose agent
waits until each record is due; what cannot be delivered goes to ``webhooks-dlq``.
At least once: a record's offset is committed only after its attempt, or after
its retry or dead letter was produced. Nothing here runs without subscribers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import mode
import orjson

from app import metrics
from app.kafka.cancel_safe import batches, finish_before_cancel
from app.kafka.delivery import guard
from app.webhooks.delivery import WebhookClient
from app.webhooks.dispatch import Dispatcher, Record, RetryPolicy

if TYPE_CHECKING:
    from agents.worker_app import WorkerApp

log = logging.getLogger(__name__)
RETRY_BATCH = 100


def register(worker: WorkerApp) -> None:
    """The delivery agents and the HTTP session, if any webhook subscribers are configured."""
    settings, topics = worker.settings, worker.topics
    if not settings.webhooks:
        return
    client = WebhookClient(timeout_s=settings.webhook_timeout_s)

    async def retry(level: int, record: Record) -> None:
        key = record["event"]["user_id"].encode()
        guard.track(await topics.webhook_retries[level - 1].send(key=key, value=orjson.dumps(record)))

    async def dead_letter(record: Record) -> None:
        guard.track(await topics.webhooks_dlq.send(key=record["event"]["user_id"].encode(),
                                                   value=orjson.dumps(record)))  # fmt: skip

    dispatcher = Dispatcher(
        settings.webhooks, client.attempt, retry, dead_letter,
        policy=RetryPolicy(settings.webhook_max_attempts, settings.webhook_backoff_s, settings.webhook_backoff_max_s),
        observe=lambda outcome: metrics.webhook_deliveries.labels(outcome).inc(),
    )  # fmt: skip

    async def deliver_published(stream) -> None:
        """First attempts for a batch of published events (segment changes, triggers or erasure notices)."""
        async for batch in batches(stream, settings.batch_size, settings.batch_within_s):
            # batch: raw JSON of events segstream itself published. It is acked when this body
            # is left, a stop included, so its attempts finish first (each within the timeout).
            events = [orjson.loads(raw) for raw in batch]
            await guard.run(finish_before_cancel(dispatcher.deliver(events)), "webhooks")

    def retry_agent(level: int):
        async def retry_deliveries(stream) -> None:
            """Retry ``level``: records arrive about in due order; wait for the latest of a batch, then send."""
            async for batch in batches(stream, RETRY_BATCH, 1.0):
                records = [orjson.loads(raw) for raw in batch]
                wait = max(record["not_before"] for record in records) - time.time()
                try:
                    await asyncio.sleep(max(0.0, wait))
                except asyncio.CancelledError:  # stopping: put the batch back before it is acked
                    await asyncio.gather(*(retry(level, record) for record in records))
                    raise
                attempts = asyncio.gather(*(dispatcher.attempt(record) for record in records))
                await guard.run(finish_before_cancel(attempts), "webhook retries")

        return retry_deliveries

    class WebhookSession(mode.Service):
        """Closes the HTTP session when the worker stops."""

        async def on_stop(self) -> None:
            await client.close()

    app = worker.app
    app.agent(topics.segment_changes, name=f"{__name__}.deliver_changes", concurrency=1)(deliver_published)
    app.agent(topics.triggers, name=f"{__name__}.deliver_triggers", concurrency=1)(deliver_published)
    app.agent(topics.erased_users, name=f"{__name__}.deliver_erasures", concurrency=1)(deliver_published)
    for level, topic in enumerate(topics.webhook_retries, start=1):
        app.agent(topic, name=f"{__name__}.retry_{level}", concurrency=1)(retry_agent(level))
    app.service(WebhookSession)
