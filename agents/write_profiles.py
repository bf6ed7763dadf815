"""``write_profiles``: the profiles of users the clicks agent changed, to Redis.

A loop of its own, not a step of the clicks agent: Redis being slow or down delays
the profiles (the backlog metric shows by how much), never the clicks. The model the
worker predicts with goes to Redis too, when its version changes: ``segstream api``
lists segments from it.
"""

from __future__ import annotations

import asyncio

from agents.engine import engine
from agents.profiles import profile_store, profile_writer
from app import metrics
from app.main import app, settings

FLUSH_EVERY_S = 0.25


@app.task
async def write_profiles() -> None:
    """Flush, pause, repeat: a flush that waits out a Redis timeout only delays the next one."""
    if not settings.profiles:
        return
    published = 0  # the model version last written for `segstream api`
    while True:
        await profile_writer.flush()
        model = engine.model
        if model is not None and model.version != published:
            try:
                await profile_store.put_model(model.to_dict())
                published = model.version
            except Exception:  # written at a later pass
                metrics.redis_errors.labels("write").inc()
        await asyncio.sleep(FLUSH_EVERY_S)


@app.on_partitions_revoked.connect
async def _flush_before_revoke(app, revoked, **kwargs) -> None:  # noqa: ARG001 - Faust signal signature
    """Write what is marked while this worker still has those users' states (one bounded try)."""
    if settings.profiles:
        await profile_writer.flush()
