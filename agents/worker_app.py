"""What one worker's agents share: its Faust app, topics, table and engine (built by agents/build.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from app.core.engine.process import Engine
from app.core.segments.segment_sizes import SegmentSizes
from app.http.dashboard import DashboardFeed
from app.kafka.model_feed import ModelFeed
from app.kafka.topics import Topics
from app.redis.materialiser import ProfileMaterialiser
from app.redis.profiles import RedisProfileStore
from app.settings import Settings
from tables.user_state import UserStateCache

__all__ = ["WorkerApp"]


@dataclass(frozen=True)
class WorkerApp:
    """The app, its topics and table, and the one engine its agents share."""

    settings: Settings
    app: faust.App
    topics: Topics
    table: Any  # user_to_state (a faust Table)
    states: UserStateCache
    engine: Engine
    segment_sizes: SegmentSizes  # users per segment among this worker's states
    dashboard: DashboardFeed
    model_feed: ModelFeed  # the published model and the learner's checkpoint, followed from segment-model
    profile_store: RedisProfileStore
    materialiser: ProfileMaterialiser  # the user-state changelog into Redis (app/redis/materialiser.py)
