"""``segment_users``: clicks in; user state, segment changes, samples and dead letters out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson
from faust.types import TP, EventT

from app import metrics
from app.core.engine.confine import process_confined
from app.core.events.deadletter import dead_letter
from app.core.events.decode import ClickEvent, Reject, decode_message
from app.core.eventtime.quiet import QuietPartitions
from app.core.features import OK
from app.core.segments.segmenter import Membership
from app.core.state.user import UserState, membership_in, outbox_in, partition_in
from app.kafka.cancel_safe import batches, finish_before_cancel
from app.kafka.consumer import committed_offsets, fetch_reports
from app.kafka.delivery import guard
from app.kafka.model_feed import CURRENT
from app.kafka.outbox import Outbox
from app.kafka.record_batches import BatchSender
from tables.codecs import decode_model, encode_state

if TYPE_CHECKING:
    from agents.worker_app import WorkerApp

log = logging.getLogger(__name__)


def register(worker: WorkerApp) -> ClickSegmenting:
    """The clicks agent, its timers and its rebalance handlers on ``worker``; returns the shared part
    the erasure agent takes turns with."""
    clicks = ClickSegmenting(worker)
    app, settings = worker.app, worker.settings

    @app.agent(worker.topics.clicks, name=f"{__name__}.segment_users", concurrency=1)
    async def segment_users(stream):
        """Per batch: decode, fold into state, decide segments, write each touched user once."""
        clicks.load_model_file()  # the partition counts were checked before the start (app/kafka/topics.py)
        async for batch in batches(stream, settings.batch_size, settings.batch_within_s, events=True):
            # The batch is acked when this body is left, a stop included: finish it first.
            await guard.run(finish_before_cancel(clicks.segment_batch_alone(batch)), "the clicks agent")

    app.timer(interval=1.0, name=f"{__name__}.settle_outputs")(clicks.settle_outputs)
    app.timer(interval=1.0, name=f"{__name__}.advance_idle_watermark")(clicks.advance_idle_watermark)
    worker.table.on_recover(clicks.reindex)
    app.tables.before_resume.append(clicks.send_unproven_outputs)
    app.on_partitions_revoked.connect(clicks.forget_partitions)
    app.on_partitions_assigned.connect(clicks.index_new_partitions)
    return clicks


class ClickSegmenting:
    """What the clicks agent keeps between batches: the outbox, the quiet partitions, the senders,
    and the lock that a batch, an idle advance and an erasure take in turn."""

    def __init__(self, worker: WorkerApp) -> None:
        self.worker = worker
        self.app, self.settings, self.topics = worker.app, worker.settings, worker.topics
        self.engine, self.states = worker.engine, worker.states
        self.change_sender = BatchSender(on_sent=metrics.count_sent)
        self.trigger_sender = BatchSender(on_sent=metrics.count_sent)
        self.erasure_sender = BatchSender(on_sent=metrics.count_sent)
        # Which click partitions the broker says are quiet (idle advance).
        self.quiet = QuietPartitions(self.settings.idle_after_s)
        # Which outputs held in states a commit has proven delivered. Those left unproven three
        # commit intervals after the broker confirmed them are written out of their states.
        self.outbox = Outbox(grace_s=3 * self.app.conf.broker_commit_interval,
                             idle_s=self.settings.proven_outputs_idle_s)  # fmt: skip
        # A batch and an idle advance both read states, decide, and write: one at a time.
        self.deciding = asyncio.Lock()
        self._adopted_raw: bytes | None = None  # the published model bytes last looked at
        self._held_at_recovery: list[tuple[int, list]] = []  # (partition, outbox entry) of the latest reindex
        for trigger in self.settings.engine.rules.triggers.names():  # every trigger's series exists from the start
            metrics.triggers.labels(trigger)

    def load_model_file(self) -> None:
        """A model file in the settings is used until (with learn=false: instead of) the learner's."""
        if self.settings.model_file:
            self.engine.use_model(decode_model(Path(self.settings.model_file).read_bytes()))

    def _follow_published_model(self) -> set[str]:
        """Adopt a newer published model; returns the segment ids it retired.

        A new fit also starts the sweep that re-decides every user (:meth:`_redecide`).
        """
        if not self.settings.learn:
            return set()
        raw = self.worker.model_feed.latest.get(CURRENT)
        if raw is None or raw is self._adopted_raw:
            return set()  # decode a published model once, not once per batch
        self._adopted_raw = raw
        snapshot = decode_model(raw)
        engine = self.engine
        if engine.model is None or snapshot.version > engine.model.version:
            before = engine.model
            if engine.use_model(snapshot):
                engine.sweep.start(self.states.user_ids())  # only the owned ones are re-decided
            metrics.observe_model(snapshot)
            log.info("predicting with model v%d (%d segments)", snapshot.version, len(snapshot.segment_ids))
            if before is not None:
                return set(before.segment_ids) - set(snapshot.segment_ids)
        return set()

    def owned_click_partitions(self) -> set[TP]:
        """This worker's click partitions, which are its user states' (co-partitioned)."""
        clicks_topic = self.topics.clicks.get_topic_name()
        return {tp for tp in self.app.assignor.assigned_actives() if tp.topic == clicks_topic}

    def owned_partitions(self) -> set[int]:
        return {tp.partition for tp in self.owned_click_partitions()}

    async def _move_members_of_retired(self, retired: set[str], now: float) -> None:
        """Members of segments the new model retired move now, not at their next click."""
        result = self.engine.retire(self.states.members_of(retired, self.owned_partitions()), emitted_at=now)
        if result.changes:
            await self._publish(result)
            log.info("moved %d users out of retired segments %s", len(result.changes), sorted(retired))

    async def _redecide(self, now: float) -> None:
        """The next users of the sweep after a new fit, re-decided under it (app/core/segments/sweep.py)."""
        if not self.engine.sweep:
            return
        owned, states = self.owned_partitions(), self.states

        def owned_state(user_id: str):
            # The store also holds standby copies of other workers' users: those are not ours to move.
            state = states.get(user_id)
            return state if state is not None and state.applied is not None and state.applied[0] in owned else None

        budget = self.settings.engine.segmenter.redecide_per_batch
        result = self.engine.redecide(owned_state, budget=budget, emitted_at=now)
        if result.changes:
            await self._publish(result)

    async def _decode(self, batch: Sequence[EventT], now: float, positions: list[tuple[int, int]]) -> list[ClickEvent]:
        """Valid events of the batch in order; rejects go to clicks-dlq with their source position."""
        settings, valid = self.settings, []
        for event in batch:
            message = event.message
            self.quiet.processed(message.partition, message.offset, now)
            decoded = decode_message(
                event.value,
                now=now,
                max_bytes=settings.max_message_bytes,
                max_future_s=settings.max_future_s,
                min_event_time=settings.min_event_time,
            )
            if decoded.events:
                positions.extend([(message.partition, message.offset)] * len(decoded.events))
                valid.extend(decoded.events)
            for reject in decoded.rejects:
                await self._send_dead_letter(message, reject)
        return valid

    async def _send_dead_letter(self, message, reject: Reject) -> None:
        """One record of ``clicks-dlq`` for ``message`` (a Kafka message of clicks), counted."""
        metrics.events.labels("dlq").inc()
        source = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
        record = await self.topics.clicks_dlq.send(key=message.key, value=orjson.dumps(dead_letter(reject, source)))
        guard.track(record)

    async def segment_batch_alone(self, batch: Sequence[EventT]) -> None:
        async with self.deciding:
            await self._segment_batch(batch)

    async def _segment_batch(self, batch: Sequence[EventT]) -> None:
        started, now = time.perf_counter(), time.time()
        retired = self._follow_published_model()
        if retired:
            await self._move_members_of_retired(retired, now)
        positions: list[tuple[int, int]] = []
        events = await self._decode(batch, now, positions)
        # events: validated ClickEvents in partition order, positions[i]: (partition, offset) of events[i]
        self.outbox.committed(self._committed_clicks())
        states = self.states
        result, encoded, failures = process_confined(
            self.engine, events, self._lookup, forget=states.forget, encode=encode_state,
            emitted_at=now, stored=states.stored, positions=positions,
            messages=positions,  # a (partition, offset) names its message
        )  # fmt: skip
        if failures:
            await self._dead_letter_failures(batch, failures)
        # result.touched: user_id -> UserState, whose .applied[0] is the user's clicks partition
        await self._publish(result, encoded)
        for outcome, count in result.outcomes.items():
            metrics.events.labels("valid" if outcome == OK else outcome).inc(count)
        lags = now - np.fromiter((event.ts for event in events), float, len(events))
        metrics.event_lag_seconds.observe_many(lags)
        self.worker.dashboard.observe_batch(lags)
        await self._redecide(now)
        if result.samples:
            # One message per batch: the learner reads [[vector | null, ts, rfm | null, user], ...].
            samples = orjson.dumps([[s.vector, s.ts, s.rfm, s.user] for s in result.samples])
            guard.track(await self.topics.model_samples.send(value=samples))
        metrics.batch_events.observe(len(batch))
        metrics.batch_seconds.observe(time.perf_counter() - started)

    async def _dead_letter_failures(self, batch: Sequence[EventT], failures) -> None:
        """Messages the engine could not process go to clicks-dlq; the rest of their batch was applied."""
        by_position = {(event.message.partition, event.message.offset): event.message for event in batch}
        for failure in failures:
            message = by_position[failure.message]
            log.error("message %s/%d failed in the engine, sent to the DLQ: %s", message.topic, message.offset,
                      failure.reason)  # fmt: skip
            await self._send_dead_letter(message, Reject(failure.reason, message.value or b""))

    async def _publish(self, result, encoded: dict[str, bytes] | None = None) -> None:
        """State, segment changes and triggers of one batch (or one idle advance), keyed by user_id.

        ``encoded``: states already encoded (process_confined's), written as they are. The
        outputs go into their users' states first (app/kafka/outbox.py): a state on the changelog
        brings with it the outputs no commit has proven delivered yet.
        """
        touched = result.touched
        self.outbox.committed(self._committed_clicks())
        records = self.outbox.hold(touched, [*(("change", c) for c in result.changes),
                                             *(("trigger", t) for t in result.triggers),
                                             *(("erasure", n) for n in result.erasures)],
                                   next_offsets=self.quiet.next_offsets)  # fmt: skip
        if encoded and records:  # these states now hold more than what was encoded
            holding = {key.decode() for _, _, key, _ in records}
            encoded = {user: raw for user, raw in encoded.items() if user not in holding}
        metrics.state_bytes.inc(await self.states.write(touched, encoded, withdrawn=result.withdrawn))
        await self.send_outputs(records)
        if result.withdrawn:  # ... and so does the learner's sample of them
            guard.track(await self.topics.model_samples.send(value=orjson.dumps({"erase": result.withdrawn})))
        self.observe_outputs(result.changes, result.triggers)

    async def send_outputs(self, records: list[tuple[str, int, bytes, bytes]]) -> None:
        """(kind, partition, key, value) records to segment-changes, triggers and erased-users, the user's partition."""
        producer = self.app.producer._ensure_producer()
        topics = self.topics
        for sender, topic, kind in (
            (self.change_sender, topics.segment_changes, "change"), (self.trigger_sender, topics.triggers, "trigger"),
            (self.erasure_sender, topics.erased_users, "erasure"),
        ):  # fmt: skip
            of_kind = [(partition, key, value) for k, partition, key, value in records if k == kind]
            await sender.send(producer, topic.get_topic_name(), of_kind)

    async def settle_outputs(self) -> None:
        """Delivered outputs that no commit is about to prove, and proven ones of quiet users, leave their
        users' states (app/kafka/outbox.py)."""
        if not self.states.ready():
            return
        outbox, quiet = self.outbox, self.quiet
        await outbox.confirm(lambda: guard.delivered_after(self.app.producer.flush))
        async with self.deciding:
            outbox.committed(self._committed_clicks())
            owned, settled = self.owned_partitions(), {}
            for user_id in outbox.to_settle(quiet.next_offsets):
                if (state := self._holding_outputs(user_id, owned)) is None:
                    continue
                if outbox.settled(state.applied[0], state.outbox):
                    outbox.proven(state.applied[0], user_id)  # their next write drops them, or the write-out
                else:
                    state.outbox = None
                    settled[user_id] = state
            # A batch's worth a second:
            for user_id in outbox.to_write_out(self.settings.batch_size, quiet.next_offsets):
                state = self._holding_outputs(user_id, owned)
                if state is not None and outbox.settled(state.applied[0], state.outbox):
                    state.outbox = None
                    settled[user_id] = state
            if settled:
                metrics.state_bytes.inc(await self.states.write(settled))

    def _holding_outputs(self, user_id: str, owned: set[int]) -> UserState | None:
        """The user's state, if it holds outputs and its partition is this worker's."""
        state = self.states.get(user_id)
        return state if state is not None and state.applied[0] in owned and state.outbox else None

    def _lookup(self, user_id: str) -> UserState | None:
        """A user's state for the engine: it is written again, without the outputs a commit proved."""
        return self.outbox.pruned(self.states.get(user_id))

    def _committed_clicks(self) -> dict[int, int]:
        """Committed offsets of the click partitions, by partition number."""
        topic = self.topics.clicks.get_topic_name()
        return {tp.partition: offset for tp, offset in committed_offsets.items() if tp.topic == topic}

    def observe_outputs(self, changes: list[dict], triggers: list[dict]) -> None:
        """Segment sizes, the dashboard and the metrics follow the published changes and triggers."""
        self.worker.segment_sizes.apply(changes)
        self.worker.dashboard.observe_outputs(changes, triggers)
        for change in changes:
            metrics.segment_changes.labels(change["kind"]).inc()
        for trigger in triggers:
            metrics.triggers.labels(trigger["trigger"]).inc()

    async def reindex(self) -> None:
        """The deadlines and segment sizes of the users this worker owns, from the table.

        Faust calls this after every rebalance's recovery (a start included), once the
        store has dropped the partitions this worker lost and before the clicks resume.
        """
        engine, sizes = self.engine, self.worker.segment_sizes
        engine.deadlines.clear()
        sizes.clear()
        owned = self.owned_partitions()
        held: list[tuple[int, list]] = []  # (partition, [kind, output, mark]) in the recovered states
        # Users no move of the current model placed: the previous owner may not have re-decided them under it.
        # The others were decided under it already; re-deciding them at whatever event time a restart or a
        # rebalance happens to come made a worker's memberships depend on when it was killed (4 of 2,004
        # unlike replay's after 10 kills with a fixed model, tests/faults/kill_loop.py).
        current = engine.model.version if engine.model is not None else 0
        undecided: list[str] = []

        def on_record(key: bytes, record: list) -> None:
            sizes.count(record)
            held.extend((partition_in(record), entry) for entry in outbox_in(record))
            if Membership.model_version_in(membership_in(record)) < current:
                undecided.append(key.decode())

        scheduled = self.states.reindex(engine.deadlines, self.settings.engine.rules.triggers, owned, on_record)
        if engine.segmenter.clustered:
            engine.sweep.start(undecided)
        self._held_at_recovery[:] = held  # sent again once the committed offsets are known (below)
        log.info("reindexed %d partitions: %d users with a pending trigger, %d outputs held in states",
                 len(owned), scheduled, len(held))  # fmt: skip

    async def send_unproven_outputs(self, committed_at: dict, resumed_at: dict) -> None:
        """Outputs whose states reached the changelog may not have reached their topics: those that
        no committed offset proves delivered are sent again, before the clicks resume."""
        topic = self.topics.clicks.get_topic_name()
        held = self._held_at_recovery
        resent = self.outbox.recovered(
            held,
            committed={tp.partition: offset for tp, offset in committed_at.items() if tp.topic == topic},
            reading_from={tp.partition: offset for tp, offset in resumed_at.items() if tp.topic == topic},
        )  # fmt: skip
        await self.send_outputs(resent)
        if held:
            log.info("%d of %d outputs held in states sent again", len(resent), len(held))
        held.clear()

    async def advance_idle_watermark(self) -> None:
        """Let deadlines fire when clicks stop: see "Idle advance" in the README."""
        if not self.states.ready():  # no firing while the table recovers
            return
        if not self.quiet.partitions:
            return
        async with self.deciding:
            await self._advance_idle(time.time())

    async def _advance_idle(self, now: float) -> None:
        engine, quiet = self.engine, self.quiet
        self._hear_from_broker()
        if released := engine.watermark.caught_up(quiet.caught_up(now)):
            log.info("click partitions %s have had nothing unread since their assignment: "
                     "they stop holding the watermark", released)  # fmt: skip
        engine.watermark.set_idle(quiet.idle(now))
        complete_until = quiet.complete_until(now)
        if complete_until is not None:
            # Every partition is quiet on the broker's word: the stream is complete up to its
            # latest event, and event time follows the broker's confirmations, idle_after_s behind.
            engine.watermark.advance_to(max(engine.watermark.max_ts, complete_until))
        result = engine.fire_due(self._lookup, emitted_at=now)
        if result.triggers:
            await self._publish(result)
        if complete_until is not None:  # a stopped stream still finishes re-deciding its users after a fit
            await self._redecide(now)

    def _hear_from_broker(self) -> None:
        """Where reading resumed, and what the latest fetches reported (app/core/eventtime/quiet.py)."""
        owned = self.owned_click_partitions()
        resumed_at = self.app.tables.recovery.resumed_at
        self.quiet.resumed({tp.partition: offset for tp, offset in resumed_at.items() if tp in owned})
        for tp, (log_end, at) in fetch_reports(self.app, owned).items():
            self.quiet.fetched(tp.partition, log_end, at)

    async def forget_partitions(self, app, revoked, **kwargs) -> None:  # noqa: ARG002 - Faust signal signature
        gone = [tp.partition for tp in revoked if tp.topic == self.topics.clicks.get_topic_name()]
        self.engine.watermark.forget(gone)
        self.quiet.forget(gone)  # not a changelog's or model-samples' partition of the same number
        self.outbox.forget(gone)
        for tp in revoked:
            committed_offsets.pop(tp, None)
        # Nothing of the revoked users may fire or be counted here until the reindex after recovery.
        self.engine.deadlines.clear()
        self.worker.segment_sizes.clear()

    async def index_new_partitions(self, app, assigned, **kwargs) -> None:  # noqa: ARG002
        partitions = [tp.partition for tp in assigned if tp.topic == self.topics.clicks.get_topic_name()]
        # No deadline fires on the other partitions' event time before a new one has delivered,
        # or the broker has confirmed it has nothing to deliver (read to its end before) ...
        self.engine.watermark.hold(partitions)
        # ... and one that stays silent from now on counts as idle in time, once a fetch confirms it.
        self.quiet.assigned(partitions, time.time())
