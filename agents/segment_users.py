"""``segment_users``: clicks in; user state, segment changes, samples and dead letters out."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
from faust.types import EventT

from agents.learn_segments import model_feed
from app import metrics
from app.core.deadletter import dead_letter
from app.core.engine import Engine
from app.core.events import ClickEvent, decode_message
from app.main import app, settings
from app.model_feed import CURRENT
from app.record_batches import BatchSender
from app.topics import clicks, clicks_dlq, declare_topics, model_samples, segment_changes
from tables.codecs import decode_model
from tables.user_state import user_states

log = logging.getLogger(__name__)

engine = Engine(settings.engine)
change_sender = BatchSender()


def _load_model_file() -> None:
    """A model file in the settings is used until (with learn=false: instead of) the learner's."""
    if settings.model_file:
        engine.use_model(decode_model(Path(settings.model_file).read_bytes()))


_adopted_raw: bytes | None = None  # the published model bytes last looked at


def _follow_published_model() -> None:
    global _adopted_raw
    if not settings.learn:
        return
    raw = model_feed.latest.get(CURRENT)
    if raw is None or raw is _adopted_raw:
        return  # decode a published model once, not once per batch
    _adopted_raw = raw
    snapshot = decode_model(raw)
    if engine.model is None or snapshot.version > engine.model.version:
        engine.use_model(snapshot)
        metrics.model_version.set(snapshot.version)
        log.info("predicting with model v%d (%d segments)", snapshot.version, len(snapshot.segment_ids))


async def _decode(batch: Sequence[EventT], now: float, positions: list[tuple[int, int]]) -> list[ClickEvent]:
    """Valid events of the batch in order; rejects go to clicks-dlq with their source position."""
    valid: list[ClickEvent] = []
    for event in batch:
        message = event.message
        decoded = decode_message(
            event.value, now=now, max_bytes=settings.max_message_bytes, max_future_s=settings.max_future_s
        )
        if decoded.events:
            positions.extend([(message.partition, message.offset)] * len(decoded.events))
            valid.extend(decoded.events)
        for reject in decoded.rejects:
            metrics.events.labels("dlq").inc()
            source = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
            await clicks_dlq.send(key=message.key, value=orjson.dumps(dead_letter(reject, source)))
    return valid


async def _check_partitions() -> None:
    """State, changes and clicks share partition numbers: their counts must match."""
    producer = app.producer._ensure_producer()
    for topic in (clicks.get_topic_name(), segment_changes.get_topic_name()):
        found = len(await producer.partitions_for(topic))
        if found != settings.partitions:
            raise SystemExit(
                f"segstream: topic {topic} has {found} partitions but SEGSTREAM_PARTITIONS is "
                f"{settings.partitions}; they must match (the user-state changelog is co-partitioned)"
            )


@app.agent(clicks, concurrency=1)
async def segment_users(stream):
    """Per batch: decode, fold into state, decide segments, write each touched user once."""
    _load_model_file()
    await declare_topics()
    await _check_partitions()
    async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        now = time.time()
        _follow_published_model()
        positions: list[tuple[int, int]] = []
        events = await _decode(batch, now, positions)
        # events: validated ClickEvents in partition order, positions[i]: (partition, offset) of events[i]
        result = engine.process(
            events, user_states.get, emitted_at=now, stored=user_states.stored, positions=positions,
            messages=positions,  # a (partition, offset) names its message
        )
        # result.touched: user_id -> UserState, whose .applied[0] is the user's clicks partition
        touched = result.touched
        metrics.state_bytes.inc(await user_states.write(touched))
        for outcome, count in result.outcomes.items():
            metrics.events.labels(outcome).inc(count)
        metrics.segment_changes.labels("cluster").inc(len(result.changes))
        # Same partition as the user's clicks: keyed by user_id, co-partitioned.
        await change_sender.send(
            app.producer._ensure_producer(),
            segment_changes.get_topic_name(),
            [(touched[c["user_id"]].applied[0], c["user_id"].encode(), orjson.dumps(c)) for c in result.changes],
        )
        if result.samples:
            # One message per batch: the learner reads [[vector, ts], ...].
            await model_samples.send(value=orjson.dumps([[s.vector, s.ts] for s in result.samples]))
