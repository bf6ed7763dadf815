"""Every topic segstream reads or writes, declared once.

Values are raw bytes: segstream decodes and validates them itself, so a bad
message reaches ``clicks-dlq`` instead of being skipped by the framework.
"""

from __future__ import annotations

from app.main import app, settings

# internal=True: the worker creates each topic at start with these partition counts
# (an existing topic is left as it is).
_RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw", "internal": True}

# Partitions: clicks and the user-state changelog must match (co-partitioned by user_id).
clicks = app.topic(settings.topic("clicks"), partitions=settings.partitions, **_RAW)
clicks_dlq = app.topic(settings.topic("clicks-dlq"), partitions=settings.partitions, **_RAW)
segment_changes = app.topic(settings.topic("segment-changes"), partitions=settings.partitions, **_RAW)
triggers = app.topic(settings.topic("triggers"), partitions=settings.partitions, **_RAW)
segment_drift = app.topic(settings.topic("segment-drift"), partitions=1, **_RAW)
# One partition: the learner is a single global model.
model_samples = app.topic(settings.topic("model-samples"), partitions=1, **_RAW)
# Compacted: keys "current" (the model snapshot) and "learner" (the learner checkpoint).
segment_model = app.topic(settings.topic("segment-model"), partitions=1, compacting=True, **_RAW)

# Webhook deliveries that failed for good (app/webhook_dispatch.py), and one retry topic per
# retry: records of one level are due in about the order they arrive.
webhooks_dlq = app.topic(settings.topic("webhooks-dlq"), partitions=settings.partitions, **_RAW)
webhook_retries = tuple(
    app.topic(settings.topic(f"webhooks-retry-{level}"), partitions=settings.partitions, **_RAW)
    for level in range(1, settings.webhook_max_attempts)
) if settings.webhooks else ()  # fmt: skip

ALL_TOPICS = (
    clicks, clicks_dlq, segment_changes, triggers, segment_drift, model_samples, segment_model, webhooks_dlq,
    *webhook_retries,
)  # fmt: skip


async def declare_topics() -> None:
    """Create every topic that is missing, with the partition counts above."""
    for topic in ALL_TOPICS:
        await topic.maybe_declare()
