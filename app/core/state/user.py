"""The one value segstream keeps per user: feature state plus segment membership.

>>> from app.core.events.decode import ClickEvent
>>> from app.core.features import FeatureConfig
>>> state = UserState()
>>> state.features.apply(ClickEvent("u1", "search", 1_767_225_600.0), FeatureConfig())
'ok'
>>> UserState.from_record(state.to_record()).to_record() == state.to_record()
True

Scans of the store read a few fields of many records without decoding them; they read
them here, where the layout lives:

>>> state.applied, state.signals.rules = (3, 41), ["big_spender"]
>>> record = state.to_record()
>>> partition_in(record), segment_in(record), rules_in(record), pending_in(record), outbox_in(record)
(3, 'new', ['big_spender'], False, [])
"""

from __future__ import annotations

from typing import Any

from app.core.features import UserFeatures
from app.core.profiles.interactions import Interactions
from app.core.segments.segmenter import Membership
from app.core.triggers.signals import Signals

# 2: window buckets as [index, count] pairs. 3: rule and trigger signals. 4: the last
# interactions. 5: features for cadence, funnel, order values, local time and device mix
# (UserFeatures.from_record tells the layouts apart). 6: withdrawn consent. 7: the outbox.
# 8: outbox entries carry the offset whose commit proves them delivered. Older records still read.
STATE_SCHEMA = 8


class UserState:
    """Features, membership, rule and trigger signals, last interactions, and the last message applied.

    ``applied`` is ``(partition, offset)`` of the newest input message folded in.
    A message redelivered after a crash (at-least-once) has an offset at or below
    it and is skipped whole, however many events it carries.

    ``withdrawn``: the user sent ``consent: false``. Their state then holds nothing
    else (:meth:`withdrawal`) and their events are not profiled until ``consent: true``.

    ``outbox``: the latest outputs this state caused, as ``[kind, JSON, mark]``: a commit of
    the user's partition at or past ``mark`` proves the output delivered (app/kafka/outbox.py).
    They travel in the same changelog record as the state, so a state that survives a
    crash brings its outputs with it; None if it never held any.
    """

    __slots__ = ("features", "membership", "applied", "signals", "interactions", "withdrawn", "outbox")

    def __init__(
        self,
        features: UserFeatures | None = None,
        membership: Membership | None = None,
        applied: tuple[int, int] | None = None,
        signals: Signals | None = None,
        interactions: Interactions | None = None,
        withdrawn: bool = False,
        outbox: list[list[str]] | None = None,
    ) -> None:
        self.features = features or UserFeatures()
        self.membership = membership or Membership()
        self.applied = applied
        self.signals = signals or Signals()
        self.interactions = interactions or Interactions()
        self.withdrawn = withdrawn
        self.outbox = outbox

    def withdrawal(self) -> UserState:
        """What is kept of a user who withdrew consent: the marker, the last message applied and the
        change sequence (so that later changes keep unique ids), nothing about their behaviour."""
        membership = Membership(seq=self.membership.seq)
        return UserState(membership=membership, applied=self.applied, withdrawn=True)

    def to_record(self) -> list[Any]:
        applied = None if self.applied is None else list(self.applied)
        return [STATE_SCHEMA, self.features.to_record(), self.membership.to_record(), applied,
                self.signals.to_record(), self.interactions.items, self.withdrawn, self.outbox]  # fmt: skip

    @classmethod
    def from_record(cls, record: list[Any]) -> UserState:
        schema, features, membership, applied, *rest = record
        if schema not in (1, 2, 3, 4, 5, 6, 7, STATE_SCHEMA):
            raise ValueError(f"user state schema {schema} is newer than {STATE_SCHEMA}; upgrade segstream")
        return cls(
            UserFeatures.from_record(features),
            Membership.from_record(membership),
            None if applied is None else (applied[0], applied[1]),
            Signals.from_record(rest[0] if rest else None),
            Interactions(rest[1] if len(rest) > 1 else None),
            bool(rest[2]) if len(rest) > 2 else False,
            rest[3] or None if len(rest) > 3 else None,
        )


# -- fields of a record, read without decoding it ----------------------------------


def partition_in(record: list[Any]) -> int | None:
    """The clicks partition of the last message the state applied (None: none yet): the state's partition."""
    applied = record[3]
    return None if applied is None else applied[0]


def membership_in(record: list[Any]) -> list[Any]:
    """The membership's record (:meth:`Membership.to_record`)."""
    return record[2]


def segment_in(record: list[Any]) -> str:
    """The cluster segment of the membership."""
    return record[2][0]


def rules_in(record: list[Any]) -> list[str]:
    """The rule segments the user is in (schema 3 on; none before)."""
    signals = record[4] if len(record) > 4 else None
    return signals[0] if signals else []


def pending_in(record: list[Any]) -> bool:
    """Whether the user has an open cart or a due trigger entry: a deadline to index."""
    signals = record[4] if len(record) > 4 else None
    return bool(signals and (signals[2] or signals[3]))


def outbox_in(record: list[Any]) -> list[Any]:
    """The outputs held in the state (schema 7 on; none before)."""
    return (record[7] if len(record) > 7 else None) or []
