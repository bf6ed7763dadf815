"""Every topic segstream reads or writes, declared once.

Values are raw bytes: segstream decodes and validates them itself, so a bad
message reaches ``clicks-dlq`` instead of being skipped by the framework.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from app.main import app, settings
from app.kafka_follow import bootstrap_servers

log = logging.getLogger(__name__)

# The worker creates each missing topic at start with these partition counts
# (create_before_start; an existing topic is left as it is). internal=True lets Faust
# declare the ones it subscribes to as well.
_RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw", "internal": True}

# Partitions: clicks and the user-state changelog must match (co-partitioned by user_id).
clicks = app.topic(settings.topic("clicks"), partitions=settings.partitions, **_RAW)
# Copies of user data that no table owns are kept for user_data_retention_s, then deleted.
_EXPIRING = {"retention": settings.user_data_retention_s, **_RAW}
clicks_dlq = app.topic(settings.topic("clicks-dlq"), partitions=settings.partitions, **_EXPIRING)
segment_changes = app.topic(settings.topic("segment-changes"), partitions=settings.partitions, **_RAW)
triggers = app.topic(settings.topic("triggers"), partitions=settings.partitions, **_RAW)
# Erasure requests, keyed by user_id: co-partitioned with clicks, so the worker that owns a
# user's state erases it (agents/erase_users.py, segstream users erase).
erasures = app.topic(settings.topic("erasures"), partitions=settings.partitions, **_RAW)
# Erasure notices (app/core/changes.py), keyed by user_id: what was erased, by request or for
# withdrawn consent, for downstream systems to erase too (the user.erased webhook).
erased_users = app.topic(settings.topic("erased-users"), partitions=settings.partitions, **_EXPIRING)
segment_drift = app.topic(settings.topic("segment-drift"), partitions=1, **_RAW)
# One partition: the learner is a single global model.
model_samples = app.topic(settings.topic("model-samples"), partitions=1, **_EXPIRING)
# Compacted: keys "current" (the model snapshot) and "learner" (the learner checkpoint).
segment_model = app.topic(settings.topic("segment-model"), partitions=1, compacting=True, **_RAW)

# Webhook deliveries that failed for good (app/webhook_dispatch.py), and one retry topic per
# retry: records of one level are due in about the order they arrive.
webhooks_dlq = app.topic(settings.topic("webhooks-dlq"), partitions=settings.partitions, **_EXPIRING)
webhook_retries = tuple(
    app.topic(settings.topic(f"webhooks-retry-{level}"), partitions=settings.partitions, **_EXPIRING)
    for level in range(1, settings.webhook_max_attempts)
) if settings.webhooks else ()  # fmt: skip

ALL_TOPICS = (
    clicks, clicks_dlq, segment_changes, triggers, erasures, erased_users, segment_drift, model_samples, segment_model,
    webhooks_dlq, *webhook_retries,
)  # fmt: skip


async def create_before_start(co_partitioned: Sequence[str] = (), timeout_s: float | None = None) -> list[str]:
    """Create the missing topics, and wait until the broker's metadata lists them; returns those created.

    Run before the worker's consumer joins its group. Faust declares its topics just
    before subscribing, but a topic created a moment before the group join can be
    missing from the assignor's metadata: the worker is then assigned none of its
    partitions ("Ignoring missing topic") until its next metadata refresh, minutes
    later. Seen on a freshly started broker.

    Fatal problems stop the start here, with one line, before Faust starts: a broker
    still unreachable after ``timeout_s``, and partition counts that do not match
    ``settings.partitions`` on the co-partitioned topics (``co_partitioned`` adds the
    tables' changelogs).
    """
    timeout_s = settings.start_timeout_s if timeout_s is None else timeout_s
    admin = await _connect(timeout_s)
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in ALL_TOPICS if topic.get_topic_name() not in existing]
        for topic in missing:  # one at a time: a worker starting beside this one may create some
            config = {"cleanup.policy": "compact"} if topic.compacting else {}
            if topic.retention is not None:
                config["retention.ms"] = str(int(topic.retention * 1000))
            new = NewTopic(topic.get_topic_name(), topic.partitions, app.conf.topic_replication_factor,
                           topic_configs=config)  # fmt: skip
            response = await admin.create_topics([new])
            for name, code, *rest in response.topic_errors:  # errors come back in the response, not raised
                if code not in (0, TopicAlreadyExistsError.errno):
                    message = rest[0] if rest else ""
                    raise SystemExit(f"segstream: cannot create topic {name}: error {code} {message}")
        await _until_listed(admin, [topic.get_topic_name() for topic in ALL_TOPICS], timeout_s)
        await _check_partitions(admin, co_partitioned)
    finally:
        await admin.close()
    return [topic.get_topic_name() for topic in missing]


async def _until_listed(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while unlisted := set(names) - set(await admin.list_topics()):  # a fresh metadata request each time
        if time.monotonic() > deadline:
            raise SystemExit(
                f"segstream: topics {sorted(unlisted)} not in the broker's metadata after {timeout_s:.0f} s"
            )
        await asyncio.sleep(0.2)


async def _connect(timeout_s: float) -> AIOKafkaAdminClient:
    """An admin client on the broker, retried until ``timeout_s``: a broker may still be starting."""
    deadline = time.monotonic() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(settings.broker))
        try:
            await admin.start()
            return admin
        except KafkaConnectionError as exc:
            await admin.close()
            if time.monotonic() > deadline:
                raise SystemExit(f"segstream: cannot reach the broker at {settings.broker} "
                                 f"after {timeout_s:.0f} s: {exc}") from None  # fmt: skip
            log.warning("broker %s not reachable yet (%s); retrying", settings.broker, exc)
            await asyncio.sleep(1.0)


async def _check_partitions(admin: AIOKafkaAdminClient, changelogs: Sequence[str]) -> None:
    """Clicks, changes, triggers, erasures, notices and the state changelogs share partition numbers: counts must match."""
    names = [topic.get_topic_name() for topic in (clicks, segment_changes, triggers, erasures, erased_users)]
    names += list(changelogs)
    for described in await admin.describe_topics(names):
        found = len(described["partitions"])
        if described["error_code"] == 0 and found != settings.partitions:  # a changelog Faust has yet to create: 3
            raise SystemExit(
                f"segstream: topic {described['topic']} has {found} partitions but SEGSTREAM_PARTITIONS is "
                f"{settings.partitions}; they must match (the user-state changelog is co-partitioned)"
            )
