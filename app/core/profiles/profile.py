"""User profiles: what the profile store holds and the lookup API returns.

A profile is built from a user's state alone, so it can always be rebuilt from
the user-state table. ``seq`` counts the events folded into the state; it only
grows, so a store keeps a write only if its ``seq`` is not older than the one it has.

>>> from app.core.events.decode import ClickEvent
>>> from app.core.features import FeatureConfig
>>> from app.core.state.user import UserState
>>> state = UserState()
>>> event = ClickEvent("u1", "purchase", 1_767_225_600.0, value=30.0, page="/p/7")
>>> state.features.apply(event, FeatureConfig()), state.interactions.add(event)
('ok', None)
>>> profile = build_profile("u1", state, None, FeatureConfig(), updated_at=1_767_225_601.0)
>>> profile["seq"], profile["segment"], profile["features"]["monetary"], profile["interactions"][0]["page"]
(1, 'new', 30.0, '/p/7')
>>> store = InMemoryProfileStore()
>>> store.write_many([profile, {**profile, "seq": 0}])  # the older write is refused
(1, 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.core.events.decode import format_ts
from app.core.features import FeatureConfig
from app.core.segments.model import NEW_SEGMENT, ModelSnapshot
from app.core.state.user import UserState

PROFILE_SCHEMA = 1
RULE_PREFIX = "rule:"  # rule segments' ids in the segment index: rule:<name>


def build_profile(
    user_id: str, state: UserState, model: ModelSnapshot | None, cfg: FeatureConfig, *,
    updated_at: float, as_of: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The profile of ``user_id``; features as of ``as_of`` (default: the user's last event)."""
    user, member = state.features, state.membership
    last = user.last_ts if user.events else None
    return {
        "schema": PROFILE_SCHEMA,
        "user_id": user_id,
        "seq": user.events + user.late + user.duplicates,
        "segment": member.segment,
        "segment_name": model.name_of(member.segment) if model is not None else member.segment,
        "model_version": member.model_version,
        "rules": list(state.signals.rules),
        "features": user.snapshot(as_of if as_of is not None else (last or 0.0), cfg),
        "interactions": state.interactions.as_list(),
        "traits": dict(user.traits),
        "last_event_at": None if last is None else format_ts(last),
        "updated_at": format_ts(updated_at),
    }


def segment_ids(profile: dict[str, Any]) -> list[str]:
    """Every segment a profile is listed under: its cluster segment and ``rule:<name>`` for each rule.

    Users not yet in a cluster segment (``new``) are listed under none.
    """
    cluster = [profile["segment"]] if profile["segment"] != NEW_SEGMENT else []
    return [*cluster, *(RULE_PREFIX + name for name in profile["rules"])]


class ProfileStore(Protocol):
    """Where profiles live for low-latency lookups (Redis in production)."""

    async def write(self, profiles: Sequence[dict[str, Any]]) -> tuple[int, int]:
        """Store newer profiles, in one round trip; returns (written, refused as older)."""

    async def get(self, user_id: str) -> dict[str, Any] | None: ...

    async def erase(self, user_ids: Sequence[str]) -> int:
        """Remove the users' profiles and every segment index entry of theirs; returns profiles removed."""

    async def members(self, segment: str, cursor: str, count: int) -> tuple[list[str], str]:
        """One page of a segment's users and the cursor of the next ("" when done)."""

    async def sizes(self, segments: Iterable[str]) -> dict[str, int]: ...

    async def put_model(self, model: dict[str, Any]) -> None:
        """The current model snapshot (``ModelSnapshot.to_dict``), for servers without one."""

    async def get_model(self) -> dict[str, Any] | None: ...


@dataclass
class InMemoryProfileStore:
    """The in-memory twin of the Redis store: same contract, no TTL, one process."""

    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    index: dict[str, dict[str, None]] = field(default_factory=dict)  # segment -> users, in insertion order
    model: dict[str, Any] | None = None

    def write_many(self, profiles: Sequence[dict[str, Any]]) -> tuple[int, int]:
        written = refused = 0
        for profile in profiles:
            user_id = profile["user_id"]
            old = self.profiles.get(user_id)
            if old is not None and old["seq"] > profile["seq"]:
                refused += 1
                continue
            for segment in segment_ids(old) if old is not None else ():
                self.index.get(segment, {}).pop(user_id, None)
            for segment in segment_ids(profile):
                self.index.setdefault(segment, {})[user_id] = None
            self.profiles[user_id] = profile
            written += 1
        return written, refused

    async def write(self, profiles: Sequence[dict[str, Any]]) -> tuple[int, int]:
        return self.write_many(profiles)

    async def get(self, user_id: str) -> dict[str, Any] | None:
        return self.profiles.get(user_id)

    async def erase(self, user_ids: Sequence[str]) -> int:
        for users in self.index.values():
            for user_id in user_ids:
                users.pop(user_id, None)
        return sum(self.profiles.pop(user_id, None) is not None for user_id in user_ids)

    async def members(self, segment: str, cursor: str, count: int) -> tuple[list[str], str]:
        users = list(self.index.get(segment, {}))
        start = int(cursor or 0)
        page = users[start : start + count]
        return page, str(start + count) if start + count < len(users) else ""

    async def sizes(self, segments: Iterable[str]) -> dict[str, int]:
        return {segment: len(self.index.get(segment, {})) for segment in segments}

    async def put_model(self, model: dict[str, Any]) -> None:
        self.model = model

    async def get_model(self) -> dict[str, Any] | None:
        return self.model
