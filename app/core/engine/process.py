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

>>> from app.core.events.decode import ClickEvent
>>> engine = Engine(EngineConfig())
>>> states = {}
>>> result = engine.process([ClickEvent("u1", "page_view", 1_767_225_600.0)], states.get)
>>> result.outcomes, list(result.touched), result.changes
(Counter({'ok': 1}), ['u1'], [])
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import compress
from typing import Any

import numpy as np

from app.core.engine.changes import CHANGE_SCHEMA, CONSENT_WITHDRAWN, erasure_notice, exit_changes
from app.core.events.decode import ClickEvent, format_ts
from app.core.eventtime.watermark import Watermark
from app.core.features import OK, FeatureConfig, UserFeatures
from app.core.rules.rulebook import Rulebook, RulesConfig
from app.core.segments.learner import LearnerConfig
from app.core.segments.model import NEW_SEGMENT, ModelSnapshot
from app.core.segments.segmenter import Segmenter, SegmenterConfig, vector_reader
from app.core.segments.sweep import RefitSweep
from app.core.state.user import UserState
from app.core.triggers.deadlines import DeadlineIndex

WITHDRAWN = "withdrawn"  # an event of a user who withdrew consent, not profiled
REDELIVERED = "redelivered"  # an at-least-once redelivery of a message already applied
_SAMPLE_BUCKETS = 10_000


@dataclass(frozen=True)
class EngineConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)

    def __post_init__(self) -> None:
        # One time zone setting: local time of day in features is the rules' default zone.
        if self.features.default_timezone != self.rules.default_timezone:
            object.__setattr__(self, "features", replace(self.features, default_timezone=self.rules.default_timezone))
        # Rules are parsed here, at start-up; the windows they count over join the features.
        book = Rulebook(self.rules, self.features)
        counted = tuple(sorted(set(self.features.counted) | set(book.counted)))
        if counted != self.features.counted:
            object.__setattr__(self, "features", replace(self.features, counted=counted))


@dataclass(slots=True)
class Sample:
    """What the learner sees of one decision: the raw feature vector and/or RFM measures."""

    vector: list[float] | None
    ts: float
    rfm: tuple[float, float, float] | None = None  # recency_days, frequency, monetary of a buyer
    user: str | None = None  # the learner keeps one sample per user


@dataclass(slots=True)
class BatchResult:
    touched: dict[str, UserState] = field(default_factory=dict)  # write each back once
    changes: list[dict[str, Any]] = field(default_factory=list)  # segment-change events
    triggers: list[dict[str, Any]] = field(default_factory=list)  # trigger events
    samples: list[Sample] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)  # ok / late / duplicate
    erased: list[str] = field(default_factory=list)  # users whose states are to be deleted
    withdrawn: list[str] = field(default_factory=list)  # users who withdrew consent: profile and samples go
    erasures: list[dict[str, Any]] = field(default_factory=list)  # erasure notices (app/core/engine/changes.py)

    def absorb(self, later: BatchResult) -> None:
        """Append the result of the events that came after this one's."""
        self.touched.update(later.touched)
        self.changes += later.changes
        self.triggers += later.triggers
        self.samples += later.samples
        self.outcomes.update(later.outcomes)
        self.erased += later.erased
        self.withdrawn += later.withdrawn
        self.erasures += later.erasures


@dataclass(slots=True)
class _Pending:
    """A decision point: a user's last event in a message, and what is known there."""

    user_id: str
    state: UserState
    event: ClickEvent  # the last event applied before the decision: its time is the change's
    until: ClickEvent  # the user's last event in the message, applied or not
    folded: int  # events folded into the user's state so far (ok, late or duplicate)
    eligible: bool
    scored: int | None = None  # its row of distances, when the cluster model scores it
    snapshot: dict[str, Any] | None = None  # features as of this event, when already taken


class Engine:
    """Applies events to per-user state and decides segment changes."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.segmenter = Segmenter(config.segmenter)
        self.watermark = Watermark(config.features.allowed_lateness_s)
        self._sample_cut = int(config.segmenter.sample_rate * _SAMPLE_BUCKETS)
        self.vector = vector_reader(config.segmenter.features, config.features)  # a user's raw model inputs (NaN: unobserved)
        self.rulebook = Rulebook(config.rules, config.features)
        triggers = config.rules.triggers
        self._cancellers = tuple((c.name, c.unless) for c in self.rulebook.conditions if c.unless)
        # Event types the triggers' per-event logic looks at; others skip it.
        self._signal_types = frozenset(
            (["add_to_cart", "purchase", "remove_from_cart"] if triggers.cart_abandon_s > 0 else [])
            + (["purchase"] if triggers.win_back_days > 0 else [])
            + [unless for _, unless in self._cancellers]
        )
        self.deadlines = DeadlineIndex()
        self.sweep = RefitSweep()  # users to re-decide after a new fit (redecide)

    @property
    def model(self) -> ModelSnapshot | None:
        return self.segmenter.snapshot

    def use_model(self, snapshot: ModelSnapshot) -> bool:
        """Predict with ``snapshot`` from now on; True when it is a new fit.

        After a new fit the caller starts :attr:`sweep` over its users, so that
        :meth:`redecide` moves those whom an earlier fit placed worse.
        """
        before = self.model
        if before is None or snapshot.version != before.version:
            self.segmenter.use(snapshot)
        return snapshot.refits(before)

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

        An event with ``consent: false`` withdraws its user at that point of the batch
        (:meth:`_withdraw`); what comes before it is processed first, what follows after.
        """
        cut = next((i for i, event in enumerate(events) if event.consent is False), None)
        if cut is None:
            return self._process(events, lookup, emitted_at=emitted_at, stored=stored, positions=positions,
                                 messages=messages)  # fmt: skip
        result = self._process(events[:cut], lookup, emitted_at=emitted_at, stored=stored,
                               positions=positions[:cut] if positions is not None else None,
                               messages=messages[:cut] if messages is not None else None)  # fmt: skip
        self._withdraw(events[cut], positions[cut] if positions is not None else None, lookup, result, emitted_at)
        touched = result.touched
        rest = self.process(  # the states after the withdrawal are this batch's; the engine copies what it needs
            events[cut + 1 :], lambda user: touched.get(user) or lookup(user), emitted_at=emitted_at,
            positions=positions[cut + 1 :] if positions is not None else None,
            messages=messages[cut + 1 :] if messages is not None else None,
        )  # fmt: skip
        result.absorb(rest)
        return result

    def _withdraw(self, event: ClickEvent, position, lookup, result: BatchResult, emitted_at: float) -> None:
        """``consent: false``: the user leaves every segment, and only a marker of them is kept.

        Their deadlines and this batch's samples of them go; the caller removes their
        profile and their learner sample (``result.withdrawn``). Their events are then
        skipped as ``withdrawn`` until one carries ``consent: true``.
        """
        user_id = event.user_id
        state = result.touched.get(user_id) or lookup(user_id) or UserState()
        if position is not None and _redelivered(position, state.applied):
            result.outcomes[REDELIVERED] += 1
            return
        if not state.withdrawn:
            emitted = format_ts(emitted_at)
            result.changes.extend(exit_changes(user_id, state, event.ts, emitted, self.model))
            source = str(event.event_id) if event.event_id is not None else str(round(event.ts * 1000))
            result.erasures.append(erasure_notice(user_id, CONSENT_WITHDRAWN, source, event.ts, emitted))
        marker = state.withdrawal()
        marker.applied = position if position is not None else state.applied
        result.touched[user_id] = marker
        result.withdrawn.append(user_id)
        result.samples = [sample for sample in result.samples if sample.user != user_id]
        self.deadlines.schedule(user_id, None)
        result.outcomes[WITHDRAWN] += 1

    def _process(
        self,
        events: Sequence[ClickEvent],
        lookup: Callable[[str], UserState | None],
        *,
        emitted_at: float = 0.0,
        stored: Callable[[str], UserState | None] | None = None,
        positions: Sequence[tuple[int, int]] | None = None,
        messages: Sequence[Hashable] | None = None,
    ) -> BatchResult:
        """:meth:`process` for a run of events with no withdrawal.

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
        triggers_cfg = self.config.rules.triggers
        segmenter = self.segmenter
        model = self.model
        edges = model.rfm_edges if model is not None else None
        clustered = model is not None and model.clustered  # an RFM-only snapshot has no clusters
        warmed = clustered and model.samples >= self.config.learner.warmup
        rulebook = None if self.rulebook.empty else self.rulebook
        signal_types, cancellers = self._signal_types, self._cancellers
        read_vector = self.vector
        last_in_message = _last_in_message(events, messages)
        changed: dict[str, ClickEvent] = {}  # user -> last event applied since their last decision
        had_evidence: dict[str, bool] = {}  # user -> evidence as of their previous decision
        evidence = self._has_evidence
        progress: dict[int, float] = {}  # partition -> newest event time in this batch
        signalled: set[str] = set()  # users whose trigger deadlines may have moved
        points: list[_Pending] = []  # every decision point, in input order
        rule_rows: list[tuple] = []  # what the rules read at each point
        rows: list[list[float]] = []  # feature vectors of the points the cluster model scores
        for index, event in enumerate(events):
            user_id = event.user_id
            state = touched.get(user_id)
            if state is None:
                state = lookup(user_id) or UserState()
                touched[user_id] = state
                applied_before[user_id] = state.applied
                if user_id in repeated:
                    origins[user_id] = state.features.copy()
            partition = 0
            if positions is not None:
                position, before = positions[index], applied_before[user_id]
                if _redelivered(position, before):
                    result.outcomes[REDELIVERED] += 1
                    skipped.add(index)
                    continue
                state.applied = position
                partition = position[0]
            if state.withdrawn:  # no consent: nothing of the user is kept until they give it again
                if event.consent is not True:
                    result.outcomes[WITHDRAWN] += 1
                    skipped.add(index)
                    continue
                state.withdrawn = False
            if user_id not in changed:  # the first event since the user's last decision
                had_evidence[user_id] = evidence(state.features)
            outcome = state.features.apply(event, features_cfg)
            result.outcomes[outcome] += 1
            if outcome == OK:
                changed[user_id] = event
                state.interactions.add(event)
                if event.ts > progress.get(partition, -math.inf):
                    progress[partition] = event.ts
                if event.type in signal_types:
                    state.signals.on_event(event, triggers_cfg, cancellers, state.features.last_purchase_ts)
                    signalled.add(user_id)
            if last_in_message is not None and not last_in_message[index]:
                continue
            cause = changed.pop(user_id, None)
            if cause is None:
                continue  # nothing of this user's message was applied
            # One decision point: the user as of their last event in this message.
            user = state.features
            member = state.membership
            eligible = evidence(user)
            point = _Pending(user_id, state, cause, event, _folded(user), eligible)
            points.append(point)
            if rulebook is not None:
                rule_rows.append(rulebook.read(state, cause, edges))
            if user.purchases and self._sampled(f"{user_id}:rfm:{user.events}"):
                result.samples.append(Sample(None, cause.ts, _rfm_measures(user)))
            if not eligible and member.segment == NEW_SEGMENT:
                continue
            # Until the model has warmed up, the decision at which a user first has evidence
            # is always sampled, so every user with evidence reaches the learner (a small
            # site gets a model); other decisions, and all once it has, by hash. The hash
            # alone samples a big site's users plenty: 10,004 samples instead of 25,881 in a
            # 30,000-user replay of the simulator.
            first = not had_evidence.pop(user_id, True)
            sampled = eligible and ((first and not warmed) or self._sampled(f"{user_id}:{user.events}"))
            if not clustered or segmenter.settled(member, cause.ts):
                if sampled:
                    result.samples.append(Sample(read_vector(user), cause.ts, user=user_id))
                continue
            vector = read_vector(user)
            if sampled:
                result.samples.append(Sample(vector, cause.ts, user=user_id))
            if eligible and member.segment == NEW_SEGMENT and user_id not in entering:
                # A new user's first eligible decision always enters a segment: take the
                # snapshot now rather than rebuild it after the batch.
                entering.add(user_id)
                point.snapshot = user.snapshot(cause.ts, features_cfg)
            point.scored = len(rows)
            rows.append(vector)
        for partition, ts in progress.items():
            self.watermark.observe(ts, partition)
        applied = [event for i, event in enumerate(events) if i not in skipped] if skipped else events
        snapshots = _Snapshots(self.config.features, applied, origins, stored)
        emitted = format_ts(emitted_at)  # the same for every output of the batch
        if rows or rule_rows:
            # Score and evaluate the whole batch at once, then decide point by point, in order.
            distances = self.segmenter.scores(rows) if rows else None  # rows x segments
            truths = rulebook.evaluate(rule_rows) if rule_rows else None  # rule -> bool per point
            self._conclude(points, distances, truths, rule_rows, result, snapshots, emitted, signalled)
        for user_id in signalled:
            signals = touched[user_id].signals
            result.triggers.extend(signals.fire_overflow(user_id, emitted))
            self.deadlines.schedule(user_id, signals.next_due(triggers_cfg))
        self._fire_due(lookup, result, emitted)
        return result

    def finish(
        self, lookup: Callable[[str], UserState | None], *, emitted_at: float = 0.0
    ) -> BatchResult:
        """End of input: the stream is complete up to its latest event; fire what is due by then."""
        self.watermark.advance_to(self.watermark.max_ts)
        result = BatchResult()
        self._fire_due(lookup, result, format_ts(emitted_at), inclusive=True)
        return result

    def fire_due(self, lookup: Callable[[str], UserState | None], *, emitted_at: float = 0.0) -> BatchResult:
        """Fire deadlines the watermark has passed without new events (an idle advance)."""
        result = BatchResult()
        self._fire_due(lookup, result, format_ts(emitted_at))
        return result

    def retire(self, members: Iterable[tuple[str, UserState]], *, emitted_at: float = 0.0) -> BatchResult:
        """Members of segments the current model no longer has move to their nearest segment now.

        Called after a new model retired segment ids (a refit with another k, or a centroid
        too far from every old one): without it a user who sends nothing more would stay in
        a segment that no longer exists. Each move is a ``moved`` change with reason
        ``segment_retired``, at the stream's latest event time, whatever the user's dwell.
        """
        result = BatchResult()
        if self.segmenter.clustered:
            known = set(self.segmenter.snapshot.segment_ids)
            stale = [(user_id, state) for user_id, state in members
                     if state.membership.segment not in known and state.membership.segment != NEW_SEGMENT]  # fmt: skip
            self._redecide(stale, result, format_ts(emitted_at))
        return result

    def redecide(
        self, lookup: Callable[[str], UserState | None], *, budget: int, emitted_at: float = 0.0
    ) -> BatchResult:
        """Re-decide the next ``budget`` users of :attr:`sweep` under the current model.

        A user moves by the same rules as at an event (``min_dwell_s``, and the new
        segment clearly better), at the stream's latest event time; the change's reason
        is ``model_refit``. A user in ``new`` with enough evidence enters, as at an event.
        ``lookup`` returns None for users to leave alone (another worker's, or gone).
        """
        result = BatchResult()
        if self.segmenter.clustered and self.sweep:
            users = [(user_id, state) for user_id in self.sweep.take(budget) if (state := lookup(user_id)) is not None]
            self._redecide(users, result, format_ts(emitted_at), reason="model_refit")
        return result

    def _redecide(
        self, users: list[tuple[str, UserState]], result: BatchResult, emitted: str, *, reason: str | None = None
    ) -> None:
        """Decide ``users`` again without an event of theirs; the movers go into ``result``."""
        segmenter, latest = self.segmenter, self.watermark.max_ts
        points = []
        for user_id, state in users:
            features, member = state.features, state.membership
            ts = max(latest, features.last_ts) if math.isfinite(latest) else features.last_ts
            if segmenter.settled(member, ts) or (member.segment == NEW_SEGMENT and not self._has_evidence(features)):
                continue
            points.append((user_id, state, ts))
        if not points:
            return
        scores = segmenter.scores([self.vector(state.features) for _, state, _ in points])
        for (user_id, state, ts), row in zip(points, scores, strict=True):
            previous, features = state.membership.segment, state.features
            if segmenter.decide(state.membership, row, ts=ts, eligible=True) is None:
                continue
            snapshot = features.snapshot(features.last_ts, self.config.features)
            result.changes.append(self._change(user_id, state, ts, previous, row, snapshot, emitted, reason=reason))
            result.touched[user_id] = state

    def _fire_due(self, lookup, result: BatchResult, emitted: str, *, inclusive: bool = False) -> None:
        watermark = self.watermark.current
        cfg = self.config.rules.triggers
        for user_id in self.deadlines.pop_due(watermark, inclusive=inclusive):
            state = result.touched.get(user_id) or lookup(user_id)
            if state is None:
                continue
            fired = state.signals.fire(user_id, watermark, cfg, emitted, inclusive=inclusive)
            if fired:
                result.triggers.extend(fired)
                result.touched[user_id] = state
            self.deadlines.schedule(user_id, state.signals.next_due(cfg))

    def _has_evidence(self, user: UserFeatures) -> bool:
        """Enough evidence to leave ``new``: ``min_events`` over ``min_sessions``, or a purchase."""
        cfg = self.config.segmenter
        return (user.events >= cfg.min_events and user.sessions >= cfg.min_sessions) or (
            0 < cfg.min_purchases <= user.purchases
        )

    def _sampled(self, key: str) -> bool:
        # Hash-based, so replay and Kafka sample the same updates.
        return zlib.crc32(key.encode()) % _SAMPLE_BUCKETS < self._sample_cut

    def _conclude(
        self,
        points: list[_Pending],
        distances: np.ndarray | None,
        truths: dict[str, np.ndarray] | None,
        rule_rows: list[tuple],
        result: BatchResult,
        snapshots: _Snapshots,
        emitted: str,
        signalled: set[str],
    ) -> None:
        """Cluster moves, rule entries and exits, and trigger edges, decision point by point."""
        decide = self.segmenter.decide
        book = self.rulebook
        names = book.segment_names if truths is not None else ()
        # rows x rule segments, as Python lists once
        membership = np.column_stack([truths[name] for name in names]).tolist() if names else None
        conditions = [(c, truths[f"trigger:{c.name}"].tolist()) for c in book.conditions] if truths else []
        texts = self.config.rules.segments
        changes = result.changes
        for i, point in enumerate(points):
            if point.scored is not None:
                member = point.state.membership
                previous = member.segment
                row = distances[point.scored]
                if decide(member, row, ts=point.event.ts, eligible=point.eligible) is not None:
                    changes.append(self._change(point.user_id, point.state, point.event.ts, previous, row,
                                                snapshots.at(point), emitted))
            signals = point.state.signals
            if membership is not None:
                now_in = list(compress(names, membership[i]))
                if now_in != signals.rules:
                    entered, exited = signals.diff_rules(now_in)
                    ts = format_ts(point.event.ts)
                    for name, change in [(n, "exited") for n in exited] + [(n, "entered") for n in entered]:
                        evidence = book.evidence(name, rule_rows[i])
                        changes.append(self._rule_change(point, name, change, texts[name], evidence, ts, emitted))
            for condition, values in conditions:
                true = values[i]
                if not true and condition.name not in signals.armed:
                    continue
                details = {"rule": condition.rule}
                if signals.on_condition(condition.name, true, point.event, condition.within_s, details):
                    result.triggers.append(signals.trigger(point.user_id, condition.name, point.event.ts, emitted, details))
                signalled.add(point.user_id)

    def _rule_change(
        self, item: _Pending, segment: str, change: str, rule: str, evidence: dict[str, Any], ts: str, emitted_at: str
    ) -> dict[str, Any]:
        """A rule segment entered or exited; ``features`` holds the values its rule read."""
        member = item.state.membership
        member.seq += 1  # one sequence per user for every kind of change: ids stay unique
        model = self.model
        return {
            "schema": CHANGE_SCHEMA,
            "event_id": f"{item.user_id}:{member.seq}",
            "user_id": item.user_id,
            "kind": "rule",
            "change": change,
            "ts": ts,
            "emitted_at": emitted_at,
            "segment": segment,
            "segment_name": segment,
            "previous": None,
            "model_version": model.version if model is not None else 0,
            "reason": "rule",
            "rule": rule,
            "features": evidence,
        }

    def _change(
        self, user_id: str, state: UserState, ts: float, previous: str, distances: Any, snapshot: dict[str, Any],
        emitted_at: str, *, reason: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """The segment-change event of a decision; ``reason`` names a move's cause when not an event."""
        member = state.membership
        model = self.model
        index = model.segment_ids.index(member.segment)
        if previous == NEW_SEGMENT:
            change, reason = "entered", "evidence"
        elif previous in model.segment_ids:
            change, reason = "moved", reason or "closer"
        else:
            change, reason = "moved", "segment_retired"
        return {
            "schema": CHANGE_SCHEMA,
            "event_id": f"{user_id}:{member.seq}",
            "user_id": user_id,
            "kind": "cluster",
            "change": change,
            "ts": format_ts(ts),
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


class _Snapshots:
    """Feature snapshots as of a decision point, rebuilding a user's state when needed.

    Points are asked for in input order, so a user's state is rebuilt forward from
    where the previous point of the same user left it, not from the start each time.
    """

    def __init__(self, cfg: FeatureConfig, events: Sequence[ClickEvent], origins, stored) -> None:
        self.cfg, self.events, self.origins, self.stored = cfg, events, origins, stored
        self._by_user: dict[str, list[ClickEvent]] | None = None
        self._cursors: dict[str, tuple[UserFeatures, int]] = {}  # user -> (rebuilt state, events applied)

    def at(self, item: _Pending) -> dict[str, Any]:
        if item.snapshot is not None:
            return item.snapshot
        if _folded(item.state.features) == item.folded:  # nothing of the user came after
            item.snapshot = item.state.features.snapshot(item.event.ts, self.cfg)
            return item.snapshot
        # The user had more events in this batch: rebuild the state as of this point.
        if self._by_user is None:
            self._by_user = {}
            for event in self.events:
                self._by_user.setdefault(event.user_id, []).append(event)
        features, applied = self._cursors.get(item.user_id) or (self._origin(item.user_id), 0)
        own = self._by_user[item.user_id]
        while applied < len(own):
            event = own[applied]
            features.apply(event, self.cfg)
            applied += 1
            if event is item.until:
                break
        self._cursors[item.user_id] = (features, applied)
        item.snapshot = features.snapshot(item.event.ts, self.cfg)
        return item.snapshot

    def _origin(self, user_id: str) -> UserFeatures:
        if self.stored is None:
            return self.origins[user_id].copy()
        before = self.stored(user_id)
        return before.features if before is not None else UserFeatures()


def _redelivered(position: tuple[int, int], applied: tuple[int, int] | None) -> bool:
    """A message at or below the last one a state applied, on the same partition: already folded in."""
    return applied is not None and position[0] == applied[0] and position[1] <= applied[1]


def _rfm_measures(user: UserFeatures) -> tuple[float, float, float]:
    return user.recency_days(user.last_ts), float(user.purchases), user.monetary


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
