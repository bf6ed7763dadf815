"""``segment_users``: clicks in; user state, segment changes, samples and dead letters out."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import orjson
from faust.types import EventT

from app.core.deadletter import dead_letter
from app.core.engine import Engine
from app.core.events import ClickEvent, decode_message
from app.core.state import UserState
from app.main import app, settings
from app.topics import clicks, clicks_dlq, model_samples, segment_changes
from tables.codecs import decode_model, decode_state, encode_state
from tables.segment_model import CURRENT, model_by_name
from tables.user_state import user_to_state

log = logging.getLogger(__name__)

engine = Engine(settings.engine)


def load_initial_model() -> None:
    """A model file given in the settings is used until (and, with learn=false, instead of) the learner's."""
    if settings.model_file:
        from pathlib import Path

        engine.use_model(decode_model(Path(settings.model_file).read_bytes()))


def _lookup(user_id: str) -> UserState | None:
    raw = user_to_state.get(user_id.encode())
    return None if raw is None else decode_state(raw)


def _refresh_model() -> None:
    if not settings.learn:
        return
    raw = model_by_name.get(CURRENT)
    if raw is not None:
        snapshot = decode_model(raw)
        if engine.model is None or snapshot.version > engine.model.version:
            engine.use_model(snapshot)
            log.info("predicting with model v%d (%d segments)", snapshot.version, len(snapshot.segment_ids))


async def _dead_letters(batch: Sequence[EventT], now: float) -> list[ClickEvent]:
    """Decode the batch; rejected inputs go to clicks-dlq with their source position."""
    valid: list[ClickEvent] = []
    for event in batch:
        decoded = decode_message(
            event.value, now=now, max_bytes=settings.max_message_bytes, max_future_s=settings.max_future_s
        )
        valid.extend(decoded.events)
        message = event.message
        for reject in decoded.rejects:
            source = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
            letter = dead_letter(reject, source)
            await clicks_dlq.send(key=message.key, value=orjson.dumps(letter))
    return valid


@app.agent(clicks, concurrency=1)
async def segment_users(stream):
    """Per batch: decode, fold into state, decide segments, write each user's state once."""
    load_initial_model()
    async for batch in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        now = time.time()
        _refresh_model()
        events = await _dead_letters(batch, now)
        # events: validated ClickEvents, in partition order
        result = engine.process(events, _lookup, emitted_at=now)
        # result.touched: user_id -> UserState; result.changes: segment-change dicts
        for user_id, state in result.touched.items():
            user_to_state[user_id.encode()] = encode_state(state)
        for change in result.changes:
            await segment_changes.send(key=change["user_id"].encode(), value=orjson.dumps(change))
        for sample in result.samples:
            await model_samples.send(value=orjson.dumps([sample.vector, sample.ts]))
