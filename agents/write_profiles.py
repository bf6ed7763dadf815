"""``write_profiles``: the profiles of users the clicks agent changed, to Redis.

A loop of its own, not a step of the clicks agent: Redis being slow or down delays the
profiles (the backlog metric shows by how much), never the clicks.
"""

from __future__ import annotations

import asyncio

from agents.profiles import profile_writer
from app.main import app, settings

FLUSH_EVERY_S = 0.25


@app.task
async def write_profiles() -> None:
    """Flush, pause, repeat: a flush that waits out a Redis timeout only delays the next one."""
    if not settings.profiles:
        return
    while True:
        await profile_writer.flush()
        await asyncio.sleep(FLUSH_EVERY_S)


@app.on_partitions_revoked.connect
async def _flush_before_revoke(app, revoked, **kwargs) -> None:  # noqa: ARG001 - Faust signal signature
    """Write what is marked while this worker still has those users' states (one bounded try)."""
    if settings.profiles:
        await profile_writer.flush()
