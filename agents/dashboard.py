"""The worker's dashboard feed (app/http/dashboard.py): the clicks agent feeds it, a timer samples it.

Drifts come from ``segment-drift``, which every worker follows from its start:
only the worker that runs the learner sees them happen.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson
from aiokafka import ConsumerRecord

from app.http.dashboard import DashboardFeed
from app.kafka.model_feed import TopicFollower

if TYPE_CHECKING:
    from agents.worker_app import WorkerApp

log = logging.getLogger(__name__)

SAMPLE_EVERY_S = 2.0  # one history point per interval: 720 points are the last 24 minutes


def register(worker: WorkerApp) -> None:
    """The drift follower and the sampling timer of ``worker.dashboard``."""
    dashboard = worker.dashboard
    topic = worker.topics.segment_drift.get_topic_name()
    worker.app.service(TopicFollower(worker.settings.broker, topic, lambda record: _on_drift(dashboard, record)))

    @worker.app.timer(interval=SAMPLE_EVERY_S, name=f"{__name__}.sample_dashboard")
    async def sample_dashboard() -> None:
        dashboard.sample()


def _on_drift(dashboard: DashboardFeed, record: ConsumerRecord) -> None:
    try:
        drift = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        drift = None
    if isinstance(drift, dict):
        dashboard.observe_drift(drift)
    else:  # anything else would end the follower: say so and go on
        log.warning("segment-drift offset %d is not a JSON object; left off the dashboard", record.offset)
