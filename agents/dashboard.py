"""The worker's dashboard feed (app/dashboard.py): the clicks agent feeds it, a timer samples it.

Drifts come from ``segment-drift``, which every worker follows from its start:
only the worker that runs the learner sees them happen.
"""

from __future__ import annotations

import logging

import orjson
from aiokafka import ConsumerRecord

from agents.engine import engine, segment_sizes
from app.dashboard import engine_feed
from app.main import app, settings
from app.model_feed import TopicFollower
from app.topics import segment_drift

log = logging.getLogger(__name__)

SAMPLE_EVERY_S = 2.0  # one history point per interval: 720 points are the last 24 minutes

dashboard = engine_feed("worker", lambda: engine.model, settings.engine.rules.segments, segment_sizes.items)


def _on_drift(record: ConsumerRecord) -> None:
    try:
        drift = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        drift = None
    if isinstance(drift, dict):
        dashboard.observe_drift(drift)
    else:  # anything else would end the follower: say so and go on
        log.warning("segment-drift offset %d is not a JSON object; left off the dashboard", record.offset)


drift_log = app.service(TopicFollower(settings.broker, segment_drift.get_topic_name(), _on_drift))


@app.timer(interval=SAMPLE_EVERY_S)
async def sample_dashboard() -> None:
    dashboard.sample()
