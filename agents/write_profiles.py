"""Profiles in Redis: the materialiser follows the user-state changelog; the model goes beside them.

The clicks agent writes states to the changelog and nothing to Redis. The
materialiser (app/redis/materialiser.py) writes each changed user's profile and
commits its offsets only after the writes, so Redis being slow or down delays the
profiles (``segstream_profile_backlog`` shows by how much), never the clicks, and no
crash or rebalance leaves a profile stale. The model the worker predicts with goes to
Redis when its version changes: ``segstream api`` lists segments from it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from app import metrics

if TYPE_CHECKING:
    from agents.worker_app import WorkerApp

MODEL_EVERY_S = 0.25


def register(worker: WorkerApp) -> None:
    """The materialiser (unless it runs beside the worker) and the model's writer, if profiles are on."""
    settings, engine, profile_store = worker.settings, worker.engine, worker.profile_store
    if not settings.profiles:
        return
    if settings.materialise_in_worker:
        worker.app.service(worker.materialiser)

    @worker.app.task
    async def publish_model() -> None:
        """The current model to Redis, once per version; a failed write is tried again at the next pass."""
        published = 0
        while True:
            model = engine.model
            if model is not None and model.version != published:
                try:
                    await profile_store.put_model(model.to_dict())
                    published = model.version
                except Exception:  # written at a later pass
                    metrics.redis_errors.labels("write").inc()
            await asyncio.sleep(MODEL_EVERY_S)
