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
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from faust.types import TopicT

import faust

from app.kafka.follow import bootstrap_servers
from app.settings import Settings

log = logging.getLogger(__name__)

# The worker creates each missing topic at start with these partition counts
# (create_before_start; an existing topic is left as it is, with a warning where it
# keeps user data longer than user_data_retention_s). internal=True lets Faust
# declare the ones it subscribes to as well.
_RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw", "internal": True}


def compacted_user_data(settings: Settings) -> dict[str, str]:
    """The configs of a compacted topic that holds user data (``segment-model``, the user-state changelog).

    A compacted topic keeps an erased user's older records until the log cleaner runs, which
    by Kafka's defaults may be never; this lag makes the broker roll the segment and clean it
    within ``user_data_retention_s`` of the erasure.

    >>> from app.settings import load_settings
    >>> compacted_user_data(load_settings(env={"SEGSTREAM_USER_DATA_RETENTION_S": "60"}))
    {'max.compaction.lag.ms': '60000'}
    """
    return {"max.compaction.lag.ms": str(int(settings.user_data_retention_s * 1000))}


class Topics:
    """Every topic of one worker's app, declared on it from ``settings``."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.settings = settings
        self.replication_factor = app.conf.topic_replication_factor
        partitions = settings.partitions

        def topic(name: str, **options):
            return app.topic(settings.topic(name), **{"partitions": partitions, **_RAW, **options})

        # Partitions: clicks and the user-state changelog must match (co-partitioned by user_id).
        self.clicks = topic("clicks")
        # Copies of user data that no table owns are kept for user_data_retention_s, then deleted.
        expiring = {"retention": settings.user_data_retention_s}
        self.clicks_dlq = topic("clicks-dlq", **expiring)
        self.segment_changes = topic("segment-changes")
        self.triggers = topic("triggers")
        # Erasure requests, keyed by user_id: co-partitioned with clicks, so the worker that owns a
        # user's state erases it (agents/erase_users.py, segstream users erase).
        self.erasures = topic("erasures")
        # Erasure notices (app/core/engine/changes.py), keyed by user_id: what was erased, by request or for
        # withdrawn consent, for downstream systems to erase too (the user.erased webhook).
        self.erased_users = topic("erased-users", **expiring)
        self.segment_drift = topic("segment-drift", partitions=1)
        # One partition: the learner is a single global model.
        self.model_samples = topic("model-samples", partitions=1, **expiring)
        # Compacted: keys "current" (the model snapshot) and "learner" (the learner checkpoint).
        self.segment_model = topic("segment-model", partitions=1, compacting=True,
                                   config=compacted_user_data(settings))  # fmt: skip
        # Webhook deliveries that failed for good (app/webhooks/dispatch.py), and one retry topic per
        # retry: records of one level are due in about the order they arrive.
        self.webhooks_dlq = topic("webhooks-dlq", **expiring)
        self.webhook_retries = tuple(
            topic(f"webhooks-retry-{level}", **expiring) for level in range(1, settings.webhook_max_attempts)
        ) if settings.webhooks else ()  # fmt: skip

    def all(self) -> tuple[TopicT, ...]:
        return (
            self.clicks, self.clicks_dlq, self.segment_changes, self.triggers, self.erasures, self.erased_users,
            self.segment_drift, self.model_samples, self.segment_model, self.webhooks_dlq, *self.webhook_retries,
        )  # fmt: skip

    def co_partitioned(self) -> tuple[TopicT, ...]:
        """Clicks, changes, triggers, erasures and notices: one partition number per user, as the changelogs."""
        return self.clicks, self.segment_changes, self.triggers, self.erasures, self.erased_users


async def create_before_start(topics: Topics, changelogs: Sequence[TopicT] = (),
                              timeout_s: float | None = None) -> list[str]:  # fmt: skip
    """Create the missing topics, and wait until the broker's metadata lists them; returns those created.

    Run before the worker's consumer joins its group. Faust declares its topics just
    before subscribing, but a topic created a moment before the group join can be
    missing from the assignor's metadata: the worker is then assigned none of its
    partitions ("Ignoring missing topic") until its next metadata refresh, minutes
    later. Seen on a freshly started broker.

    ``changelogs`` are the tables' changelog topics. They are created here too, compacted:
    left to Faust, a changelog was first made by a metadata request for it (the partition
    check below, or the profile materialiser that follows it), and so by the broker's
    auto-creation, which deletes after 7 days instead of compacting. A user quiet that
    long lost their state at the next recovery, and an erased user's older states stayed
    until then.

    Fatal problems stop the start here, with one line, before Faust starts: a broker
    still unreachable after ``timeout_s``, and partition counts that do not match
    ``topics.settings.partitions`` on the co-partitioned topics (the changelogs among them).
    """
    settings = topics.settings
    timeout_s = settings.start_timeout_s if timeout_s is None else timeout_s
    declared = (*topics.all(), *changelogs)
    admin = await _connect(settings.broker, timeout_s)
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in declared if topic.get_topic_name() not in existing]
        for topic in missing:  # one at a time: a worker starting beside this one may create some
            new = NewTopic(topic.get_topic_name(), topic.partitions, topics.replication_factor,
                           topic_configs={**topic.config, **_bounds(topic)})  # fmt: skip
            response = await admin.create_topics([new])
            for name, code, *rest in response.topic_errors:  # errors come back in the response, not raised
                if code not in (0, TopicAlreadyExistsError.errno):
                    message = rest[0] if rest else ""
                    raise SystemExit(f"segstream: cannot create topic {name}: error {code} {message}")
        await _until_listed(admin, [topic.get_topic_name() for topic in declared], timeout_s)
        await _check_partitions(admin, [topic.get_topic_name() for topic in (*topics.co_partitioned(), *changelogs)],
                                settings.partitions)  # fmt: skip
        await _warn_unbounded(admin, {topic.get_topic_name(): _bounds(topic) for topic in declared}, settings.broker)
    finally:
        await admin.close()
    return [topic.get_topic_name() for topic in missing]


def _bounds(topic: TopicT) -> dict[str, str]:
    """The configs that bound how long ``topic`` keeps a user's data: its retention, or compaction with a lag."""
    if topic.compacting:
        return {"cleanup.policy": "compact", **{name: value for name, value in topic.config.items()
                                                 if name == "max.compaction.lag.ms"}}  # fmt: skip
    if topic.retention is not None:
        return {"retention.ms": str(int(topic.retention * 1000))}
    return {}


def _keeps_longer(name: str, found: str | None, bound: str) -> bool:
    """Whether the config value ``found`` keeps data longer than ``bound`` (None: the broker's default)."""
    if name == "cleanup.policy":
        return bound not in (found or "delete").split(",")
    return not 0 <= int(found or -1) <= int(bound)  # -1: forever


async def _warn_unbounded(admin: AIOKafkaAdminClient, bounds: dict[str, dict[str, str]], broker: str) -> None:
    """One WARNING per config of an existing topic that keeps user data longer than ``bounds`` say.

    A topic made by an older segstream, or by hand, keeps its configuration: the worker
    leaves it as it is (altering a shared topic is the operator's call) and says how.
    """
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name, bound in bounds.items() if bound]
    for response in await admin.describe_configs(resources):
        for error, _message, _type, topic, entries in response.resources:
            if error:
                continue
            found = {entry[0]: entry[1] for entry in entries}
            for name, bound in bounds[topic].items():
                if _keeps_longer(name, found.get(name), bound):
                    log.warning(
                        "topic %s has %s=%s, so it may keep an erased user's data longer than user_data_retention_s; "
                        "set it with: kafka-configs.sh --bootstrap-server %s --alter --entity-type topics "
                        "--entity-name %s --add-config %s=%s", topic, name, found.get(name), broker, topic,
                        name, bound,
                    )  # fmt: skip


async def _until_listed(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while unlisted := set(names) - set(await admin.list_topics()):  # a fresh metadata request each time
        if time.monotonic() > deadline:
            raise SystemExit(
                f"segstream: topics {sorted(unlisted)} not in the broker's metadata after {timeout_s:.0f} s"
            )
        await asyncio.sleep(0.2)


async def _connect(broker: str, timeout_s: float) -> AIOKafkaAdminClient:
    """An admin client on the broker, retried until ``timeout_s``: a broker may still be starting."""
    deadline = time.monotonic() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker))
        try:
            await admin.start()
            return admin
        except KafkaConnectionError as exc:
            await admin.close()
            if time.monotonic() > deadline:
                raise SystemExit(f"segstream: cannot reach the broker at {broker} "
                                 f"after {timeout_s:.0f} s: {exc}") from None  # fmt: skip
            log.warning("broker %s not reachable yet (%s); retrying", broker, exc)
            await asyncio.sleep(1.0)


async def _check_partitions(admin: AIOKafkaAdminClient, names: Sequence[str], partitions: int) -> None:
    """Clicks, changes, triggers, erasures, notices and the state changelogs share partition numbers."""
    for described in await admin.describe_topics(list(names)):
        found = len(described["partitions"])
        if described["error_code"] == 0 and found != partitions:
            raise SystemExit(
                f"segstream: topic {described['topic']} has {found} partitions but SEGSTREAM_PARTITIONS is "
                f"{partitions}; they must match (the user-state changelog is co-partitioned)"
            )
