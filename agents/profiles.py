"""The worker's profile store and materialiser, shared by the profile tasks and the API."""

from __future__ import annotations

import time
from typing import Any

from agents.engine import engine
from app import metrics
from app.core.profile import build_profile
from app.main import settings
from app.profile_materialiser import ProfileMaterialiser
from app.redis_profiles import RedisProfileStore
from tables.user_state import user_states

profile_store = RedisProfileStore.from_settings(settings)


def profile_of(user_id: str) -> dict[str, Any] | None:
    """The profile of a user this worker owns, from the table; None if it has no state here,
    or they withdrew consent."""
    state = user_states.get(user_id)
    if state is None or state.withdrawn:
        return None
    return build_profile(user_id, state, engine.model, settings.engine.features, updated_at=time.time())


# Follows the user-state changelog into Redis (app/profile_materialiser.py); the clicks
# agent itself never builds or writes a profile.
materialiser = ProfileMaterialiser.from_settings(settings, profile_store, lambda: engine.model,
                                                 observe=metrics.observe_profiles)  # fmt: skip
