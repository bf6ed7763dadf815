"""The one value segstream keeps per user: feature state plus segment membership.

>>> from app.core.events import ClickEvent
>>> from app.core.features import FeatureConfig
>>> state = UserState()
>>> state.features.apply(ClickEvent("u1", "search", 1_767_225_600.0), FeatureConfig())
'ok'
>>> UserState.from_record(state.to_record()).to_record() == state.to_record()
True
"""

from __future__ import annotations

from typing import Any

from app.core.features import UserFeatures
from app.core.segmenter import Membership

STATE_SCHEMA = 2  # 2: window buckets as [index, count] pairs; schema 1 records still read


class UserState:
    """Features, membership, and the source position of the last message applied.

    ``applied`` is ``(partition, offset)`` of the newest input message folded in.
    A message redelivered after a crash (at-least-once) has an offset at or below
    it and is skipped whole, however many events it carries.
    """

    __slots__ = ("features", "membership", "applied")

    def __init__(
        self,
        features: UserFeatures | None = None,
        membership: Membership | None = None,
        applied: tuple[int, int] | None = None,
    ) -> None:
        self.features = features or UserFeatures()
        self.membership = membership or Membership()
        self.applied = applied

    def to_record(self) -> list[Any]:
        applied = None if self.applied is None else list(self.applied)
        return [STATE_SCHEMA, self.features.to_record(), self.membership.to_record(), applied]

    @classmethod
    def from_record(cls, record: list[Any]) -> UserState:
        schema, features, membership, applied = record
        if schema not in (1, STATE_SCHEMA):
            raise ValueError(f"user state schema {schema} is not {STATE_SCHEMA}; migrate the table first")
        return cls(
            UserFeatures.from_record(features),
            Membership.from_record(membership),
            None if applied is None else (applied[0], applied[1]),
        )
