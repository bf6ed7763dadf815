"""``write_profiles``: the profiles of users the clicks agent changed, to Redis.

A timer, not a step of the clicks agent: Redis being slow or down delays the
profiles (the backlog metric shows by how much), never the clicks.
"""

from __future__ import annotations

from agents.profiles import profile_writer
from app.main import app, settings

FLUSH_EVERY_S = 0.25


@app.timer(interval=FLUSH_EVERY_S)
async def write_profiles() -> None:
    if settings.profiles:
        await profile_writer.flush()


@app.on_partitions_revoked.connect
async def _flush_before_revoke(app, revoked, **kwargs) -> None:  # noqa: ARG001 - Faust signal signature
    """Write what is marked while this worker still has those users' states (one bounded try)."""
    if settings.profiles:
        await profile_writer.flush()
