"""The segmentation engine: a batch of valid events in, state and outputs out.

The engine is the whole hot path without I/O. The Faust agent and the embedded
replay both call :meth:`Engine.process` and differ only in where events come
from and where outputs go, so they give the same segment changes for the same
input and model.

Segment decisions are taken per message, in input order: after the last event
of each user in each message, from the feature vector as of that event. Only the
distance computation is batched, and a message is never split across batches,
so the output does not depend on how the stream was cut into batches. Users
inside their minimum dwell cannot move, so their distances are not computed.

>>> from app.core.events import ClickEvent
>>> engine = Engine(EngineConfig())
>>> states = {}
>>> result = engine.process([ClickEvent("u1", "page_view", 1_767_225_600.0)], states.get)
>>> result.outcomes, list(result.touched), result.changes
(Counter({'ok': 1}), ['u1'], [])
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.events import ClickEvent, format_ts
from app.core.features import OK, FeatureConfig, UserFeatures
from app.core.learner import LearnerConfig
from app.core.model import NEW_SEGMENT, ModelSnapshot
from app.core.segmenter import Segmenter, SegmenterConfig, vector_reader
from app.core.state import UserState
from app.core.watermark import Watermark

CHANGE_SCHEMA = 1
REDELIVERED = "redelivered"  # an at-least-once redelivery of a message already applied
_SAMPLE_BUCKETS = 10_000


@dataclass(frozen=True)
class EngineConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)


@dataclass(slots=True)
class Sample:
    """A user's raw feature vector after one event, for the learner."""

    vector: list[float]
    ts: float


@dataclass(slots=True)
class BatchResult:
    touched: dict[str, UserState] = field(default_factory=dict)  # write each back once
    changes: list[dict[str, Any]] = field(default_factory=list)  # segment-change events
    samples: list[Sample] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)  # ok / late / duplicate


@dataclass(slots=True)
class _Pending:
    """A decision that may change a user's segment, with the user's vector at that point."""

    user_id: str
    state: UserState
    event: ClickEvent  # the last event applied before the decision: its time is the change's
    until: ClickEvent  # the user's last event in the message, applied or not
    folded: int  # events folded into the user's state so far (ok, late or duplicate)
    eligible: bool
    snapshot: dict[str, Any] | None = None  # features as of this event, when already taken


class Engine:
    """Applies events to per-user state and decides segment changes."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.segmenter = Segmenter(config.segmenter)
        self.watermark = Watermark(config.features.allowed_lateness_s)
        self._sample_cut = int(config.segmenter.sample_rate * _SAMPLE_BUCKETS)
        self._vector = vector_reader(config.segmenter.features)

    @property
    def model(self) -> ModelSnapshot | None:
        return self.segmenter.snapshot

    def use_model(self, snapshot: ModelSnapshot) -> None:
        if self.model is None or snapshot.version != self.model.version:
            self.segmenter.use(snapshot)

    def process(
        self,
        events: Sequence[ClickEvent],
        lookup: Callable[[str], UserState | None],
        *,
        emitted_at: float = 0.0,
        stored: Callable[[str], UserState | None] | None = None,
        positions: Sequence[tuple[int, int]] | None = None,
        messages: Sequence[Hashable] | None = None,
    ) -> BatchResult:
        """Fold ``events`` (in input order) into state; ``lookup`` reads current state.

        ``stored``, when given, reads a user's state as it was before this batch
        (a fresh object); without it the engine copies the features of users with
        several events in the batch, to rebuild the snapshot of a change that is
        not their last event.

        ``positions`` gives each event's source ``(partition, offset)``; events of
        messages a user's state has already applied are skipped as ``redelivered``.

        ``messages`` names each event's message (equal and adjacent for the events of
        one message). A user's segment is decided once per message, after the last of
        their events in it: a message arrives whole, so the states between its events
        were never observable. Without it every event is a message of its own.
        """
        result = BatchResult()
        touched = result.touched
        # Users with several events in this batch keep their features from before it,
        # to rebuild the snapshot of a change that is not their last event.
        repeated = (
            set()
            if stored is not None
            else {user for user, n in Counter(event.user_id for event in events).items() if n > 1}
        )
        origins: dict[str, UserFeatures] = {}
        applied_before: dict[str, tuple[int, int] | None] = {}
        skipped: set[int] = set()  # indexes of redelivered events
        entering: set[str] = set()
        features_cfg = self.config.features
        seg_cfg = self.config.segmenter
        segmenter = self.segmenter
        model = self.model
        read_vector = self._vector
        last_in_message = _last_in_message(events, messages)
        changed: dict[str, ClickEvent] = {}  # user -> last event applied since their last decision
        newest = self.watermark.max_ts
        pending: list[_Pending] = []
        rows: list[list[float]] = []
        for index, event in enumerate(events):
            user_id = event.user_id
            state = touched.get(user_id)
            if state is None:
                state = lookup(user_id) or UserState()
                touched[user_id] = state
                applied_before[user_id] = state.applied
                if user_id in repeated:
                    origins[user_id] = state.features.copy()
            if positions is not None:
                position, before = positions[index], applied_before[user_id]
                if before is not None and position[0] == before[0] and position[1] <= before[1]:
                    result.outcomes[REDELIVERED] += 1
                    skipped.add(index)
                    continue
                state.applied = position
            outcome = state.features.apply(event, features_cfg)
            result.outcomes[outcome] += 1
            if outcome == OK:
                changed[user_id] = event
                if event.ts > newest:
                    newest = event.ts
            if last_in_message is not None and not last_in_message[index]:
                continue
            cause = changed.pop(user_id, None)
            if cause is None:
                continue  # nothing of this user's message was applied
            user = state.features
            member = state.membership
            eligible = user.events >= seg_cfg.min_events and user.sessions >= seg_cfg.min_sessions
            if not eligible and member.segment == NEW_SEGMENT:
                continue
            sampled = eligible and self._sampled(user_id, user.events)
            if model is None or segmenter.settled(member, cause.ts):
                if sampled:
                    result.samples.append(Sample(read_vector(user), cause.ts))
                continue
            vector = read_vector(user)
            if sampled:
                result.samples.append(Sample(vector, cause.ts))
            snapshot = None
            if eligible and member.segment == NEW_SEGMENT and user_id not in entering:
                # A new user's first eligible decision always enters a segment: take the
                # snapshot now rather than rebuild it after the batch.
                entering.add(user_id)
                snapshot = user.snapshot(cause.ts, features_cfg)
            pending.append(_Pending(user_id, state, cause, event, _folded(user), eligible, snapshot))
            rows.append(vector)
        self.watermark.observe(newest)
        if pending:
            applied = [event for i, event in enumerate(events) if i not in skipped] if skipped else events
            self._decide(pending, rows, result, emitted_at, applied, origins, stored)
        return result

    def _sampled(self, user_id: str, events: int) -> bool:
        # Hash-based, so replay and Kafka sample the same updates.
        return zlib.crc32(f"{user_id}:{events}".encode()) % _SAMPLE_BUCKETS < self._sample_cut

    def _decide(
        self,
        pending: list[_Pending],
        rows: list[list[float]],
        result: BatchResult,
        emitted_at: float,
        events: Sequence[ClickEvent],
        origins: dict[str, UserFeatures],
        stored: Callable[[str], UserState | None] | None,
    ) -> None:
        distances = self.segmenter.distances(rows)
        # rows x segments: each event's distance to every centroid, decided in order
        decide = self.segmenter.decide
        emitted = format_ts(emitted_at)  # the same for every change of the batch
        by_user: dict[str, list[ClickEvent]] | None = None
        for item, row in zip(pending, distances, strict=True):
            member = item.state.membership
            previous = member.segment
            if decide(member, row, ts=item.event.ts, eligible=item.eligible) is None:
                continue
            if item.snapshot is not None:
                snapshot = item.snapshot
            elif _folded(item.state.features) == item.folded:  # nothing of the user came after
                snapshot = item.state.features.snapshot(item.event.ts, self.config.features)
            else:  # the user had more events in this batch: rebuild the state as of this one
                if by_user is None:
                    by_user = {}
                    for event in events:
                        by_user.setdefault(event.user_id, []).append(event)
                if stored is None:
                    origin = origins[item.user_id]
                else:
                    before = stored(item.user_id)
                    origin = before.features if before is not None else UserFeatures()
                features = self._features_at(item, by_user[item.user_id], origin)
                snapshot = features.snapshot(item.event.ts, self.config.features)
            result.changes.append(self._change(item, previous, row, snapshot, emitted))

    def _features_at(self, item: _Pending, own_events: list[ClickEvent], origin: UserFeatures) -> UserFeatures:
        features = origin.copy()
        for event in own_events:
            features.apply(event, self.config.features)
            if event is item.until:
                break
        return features

    def _change(
        self, item: _Pending, previous: str, distances: Any, snapshot: dict[str, Any], emitted_at: str
    ) -> dict[str, Any]:
        member = item.state.membership
        model = self.model
        index = model.segment_ids.index(member.segment)
        if previous == NEW_SEGMENT:
            change, reason = "entered", "evidence"
        elif previous in model.segment_ids:
            change, reason = "moved", "closer"
        else:
            change, reason = "moved", "segment_retired"
        return {
            "schema": CHANGE_SCHEMA,
            "event_id": f"{item.user_id}:{member.seq}",
            "user_id": item.user_id,
            "kind": "cluster",
            "change": change,
            "ts": format_ts(item.event.ts),
            "emitted_at": emitted_at,
            "segment": member.segment,
            "segment_name": model.names[index],
            "previous": previous,
            "previous_name": model.name_of(previous),
            "model_version": model.version,
            "reason": reason,
            "distance": round(float(distances[index]), 4),
            "features": snapshot,
        }


def _folded(user: UserFeatures) -> int:
    return user.events + user.late + user.duplicates


def _last_in_message(events: Sequence[ClickEvent], messages: Sequence[Hashable] | None) -> list[bool] | None:
    """For each event, whether it is its user's last in its message (None: all are)."""
    if messages is None:
        return None
    last = [True] * len(events)
    latest: dict[str, int] = {}  # user -> index of their latest event in the current message
    current: Hashable = object()
    for index, (event, message) in enumerate(zip(events, messages, strict=True)):
        if message != current:
            latest.clear()
            current = message
        earlier = latest.get(event.user_id)
        if earlier is not None:
            last[earlier] = False
        latest[event.user_id] = index
    return last
