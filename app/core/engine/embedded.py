"""The whole pipeline in one process, without Kafka: decode, engine, learner.

Used by ``segstream replay`` and ``segstream demo``. State lives in a dict; the
learner runs in-line after each batch, exactly as the ``learn`` agent would, so
the model evolves at batch boundaries.

>>> pipeline = EmbeddedPipeline(EngineConfig())
>>> out = pipeline.feed([b'{"user_id": "u1", "type": "search", "ts": 1767225600}', b'not json'], now=1767225600.0)
>>> out.outcomes, [r.reason[:8] for r in out.rejects]
(Counter({'ok': 1}), ['not JSON'])
>>> sorted(pipeline.states)
['u1']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.core.engine.process import Engine, EngineConfig
from app.core.events.decode import ClickEvent, Reject, decode_message
from app.core.profiles.profile import build_profile
from app.core.segments.learner import DriftEvent, Learner
from app.core.segments.model import ModelSnapshot
from app.core.state.user import UserState


@dataclass
class FeedResult:
    changes: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    erasures: list[dict[str, Any]] = field(default_factory=list)  # erasure notices (consent withdrawn)
    drifts: list[DriftEvent] = field(default_factory=list)
    models: list[ModelSnapshot] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    reject_sources: list[int] = field(default_factory=list)  # position of each reject's message in the feed
    outcomes: Counter = field(default_factory=Counter)
    event_times: list[float] = field(default_factory=list)  # of the valid events, in order


class EmbeddedPipeline:
    """Engine plus learner plus in-memory state."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        model: ModelSnapshot | None = None,
        learn: bool = True,
        min_event_time: float | None = None,  # the setting: events before it are rejects
    ) -> None:
        self.config = config
        self.min_event_time = min_event_time
        self.engine = Engine(config)
        self.states: dict[str, UserState] = {}
        self.learner = (
            Learner(config.learner, features=config.segmenter.features, log_features=config.segmenter.log_features)
            if learn
            else None
        )
        self._redecide_per_batch = config.segmenter.redecide_per_batch
        if model is not None:
            self.engine.use_model(model)

    def feed(self, messages: Iterable[bytes], *, now: float) -> FeedResult:
        """Decode and process raw messages (one JSON object or array each)."""
        events: list[ClickEvent] = []
        message_of: list[int] = []  # each event's message, so users are decided once per message
        out = FeedResult()
        for position, raw in enumerate(messages):
            decoded = decode_message(raw, now=now, min_event_time=self.min_event_time)
            events.extend(decoded.events)
            message_of.extend([position] * len(decoded.events))
            for reject in decoded.rejects:
                out.rejects.append(reject)
                out.reject_sources.append(position)
        out.event_times = [event.ts for event in events]
        self._run(events, message_of, out, now)
        return out

    def _run(self, events: list[ClickEvent], message_of: list[int], out: FeedResult, now: float) -> None:
        result = self.engine.process(events, self.states.get, emitted_at=now, messages=message_of)
        self._collect(result, out)
        if self.learner is None:
            return
        for user in result.withdrawn:  # consent withdrawn: the learner's sample of them goes
            self.learner.forget(user)
        for sample in result.samples:
            if sample.rfm is not None:
                out.models.extend(self.learner.learn_rfm(*sample.rfm, ts=sample.ts))  # RFM-only, before clusters
            if sample.vector is None:
                continue
            for item in self.learner.learn(sample.vector, sample.ts, user=sample.user):
                if isinstance(item, DriftEvent):
                    out.drifts.append(item)
                else:
                    out.models.append(item)
        if out.models:
            self._adopt(out.models[-1], out, now)
        self._collect(self.engine.redecide(self.states.get, budget=self._redecide_per_batch, emitted_at=now), out)

    def _adopt(self, model: ModelSnapshot, out: FeedResult, now: float) -> None:
        before = self.engine.model
        if self.engine.use_model(model):  # a new fit: every user is re-decided, a batch's share at a time
            self.engine.sweep.start(self.states)
        if before is not None and set(before.segment_ids) - set(model.segment_ids):
            # Segments retired: their members move now, not at their next event.
            self._collect(self.engine.retire(self.states.items(), emitted_at=now), out)

    def finish(self, *, now: float) -> FeedResult:
        """End of input: finish re-deciding users under the newest fit; fire the deadlines due by the last event time."""
        out = FeedResult()
        # The input is complete: every user is re-decided under the final fit before the end.
        self._collect(self.engine.redecide(self.states.get, budget=len(self.engine.sweep), emitted_at=now), out)
        self._collect(self.engine.finish(self.states.get, emitted_at=now), out)
        return out

    def _collect(self, result, out: FeedResult) -> None:
        self.states.update(result.touched)
        out.changes.extend(result.changes)
        out.triggers.extend(result.triggers)
        out.erasures.extend(result.erasures)
        out.outcomes.update(result.outcomes)

    def profiles(self) -> Iterable[dict[str, Any]]:
        """Every user's profile (:mod:`app.core.profiles.profile`) as of the stream's last event time.

        ``updated_at`` is that event time too, so a replay's output depends only on its input.
        """
        as_of = self.engine.watermark.max_ts
        model = self.engine.model
        for user_id, state in self.states.items():
            if state.withdrawn:  # consent withdrawn: no profile
                continue
            yield build_profile(user_id, state, model, self.config.features, updated_at=as_of, as_of=as_of)
