"""The engine: batch-independent decisions, deterministic ids, and the embedded pipeline."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import orjson
import pytest

from app.core.engine.embedded import EmbeddedPipeline
from app.core.engine.process import EngineConfig
from app.core.segments.segmenter import Segmenter
from app.simulator import Scenario, generate

SCENARIO = Scenario(users=300, events=15_000, seed=3)


@pytest.fixture(scope="module")
def messages() -> list[bytes]:
    return [message.to_bytes() for message in generate(SCENARIO)]


@pytest.fixture(scope="module")
def trained_model(messages):
    pipeline = EmbeddedPipeline(EngineConfig())
    pipeline.feed(messages, now=2e9)
    assert pipeline.engine.model is not None
    return pipeline.engine.model


def run(messages, model, batch: int) -> list[dict]:
    pipeline = EmbeddedPipeline(EngineConfig(), model=model, learn=False)
    changes = []
    for start in range(0, len(messages), batch):
        changes.extend(pipeline.feed(messages[start : start + batch], now=2e9).changes)
    return changes


def comparable(changes: list[dict]) -> list[bytes]:
    return [orjson.dumps({k: v for k, v in change.items() if k != "emitted_at"}) for change in changes]


def test_changes_do_not_depend_on_batch_boundaries(messages, trained_model):
    one = run(messages, trained_model, batch=1)
    big = run(messages, trained_model, batch=5_000)
    odd = run(messages, trained_model, batch=333)
    assert one, "the scenario should produce segment changes"
    assert comparable(one) == comparable(big) == comparable(odd)


@pytest.fixture(scope="module")
def collector_messages() -> list[bytes]:
    """The same traffic as collector batches: up to 20 events of one user per message."""
    return [message.to_bytes() for message in generate(replace(SCENARIO, events_per_message=20))]


def test_collector_batches_do_not_depend_on_batch_boundaries(collector_messages, trained_model):
    one = run(collector_messages, trained_model, batch=1)
    odd = run(collector_messages, trained_model, batch=37)
    assert one and comparable(one) == comparable(odd)


def test_a_user_is_decided_once_per_message(collector_messages, trained_model):
    """A change is dated by its user's last event in a message, never by one in between."""
    decision_times: dict[str, set[float]] = {}
    for raw in collector_messages:
        doc = orjson.loads(raw)
        latest = {event["user_id"]: event["ts"] / 1000 for event in (doc if isinstance(doc, list) else [doc])}
        for user, ts in latest.items():
            decision_times.setdefault(user, set()).add(round(ts, 3))
    changes = run(collector_messages, trained_model, batch=100)
    assert changes
    for change in changes:
        ts = round(datetime.fromisoformat(change["ts"]).timestamp(), 3)
        assert ts in decision_times[change["user_id"]], change


def test_skipping_users_inside_their_dwell_changes_nothing(messages, trained_model, monkeypatch):
    """The engine does not score users who cannot move yet; scoring them gives the same output."""
    skipped = run(messages, trained_model, batch=500)
    monkeypatch.setattr(Segmenter, "settled", lambda self, member, ts: False)
    assert comparable(skipped) == comparable(run(messages, trained_model, batch=500))


def test_change_events_follow_the_contract(messages, trained_model):
    changes = run(messages, trained_model, batch=1_000)
    per_user: dict[str, list[dict]] = {}
    for change in changes:
        per_user.setdefault(change["user_id"], []).append(change)
    for user, own in per_user.items():
        # One id sequence per user across cluster and rule changes.
        assert [c["event_id"] for c in own] == [f"{user}:{n}" for n in range(1, len(own) + 1)]
        cluster = [c for c in own if c["kind"] == "cluster"]
        if cluster:
            assert cluster[0]["previous"] == "new" and cluster[0]["change"] == "entered"
        for before, after in zip(cluster, cluster[1:]):
            assert after["previous"] == before["segment"] != after["segment"]
            assert after["change"] == "moved"
        for segment in {c["segment"] for c in own if c["kind"] == "rule"}:
            moves = [c["change"] for c in own if c["kind"] == "rule" and c["segment"] == segment]
            assert moves == ["entered", "exited"] * (len(moves) // 2) + ["entered"] * (len(moves) % 2)
    required = {"event_id", "user_id", "kind", "change", "ts", "emitted_at", "segment", "segment_name",
                "previous", "model_version", "reason", "features"}  # fmt: skip
    assert all(required <= change.keys() for change in changes)
    assert {change["kind"] for change in changes} == {"cluster", "rule"}


def test_only_membership_changes_are_published(messages, trained_model):
    changes = run(messages, trained_model, batch=1_000)
    cluster = [c for c in changes if c["kind"] == "cluster"]
    assert len(cluster) < SCENARIO.users * 3  # a handful per user, not one per event


def test_embedded_pipeline_counts_every_outcome():
    pipeline = EmbeddedPipeline(EngineConfig())
    out = pipeline.feed(
        [
            b'{"user_id": "a", "type": "search", "ts": 1767225600, "event_id": "1"}',
            b'{"user_id": "a", "type": "search", "ts": 1767225600, "event_id": "1"}',
            b'{"user_id": "a", "type": "search", "ts": 1767222000, "event_id": "2"}',
            b"[1, 2]",
        ],
        now=2e9,
    )
    assert out.outcomes == {"ok": 1, "duplicate": 1, "late": 1}
    assert [r.index for r in out.rejects] == [0, 1] and out.reject_sources == [3, 3]


def test_rebuilding_from_stored_state_matches_copying(messages, trained_model):
    """The worker rebuilds snapshots from the stored bytes; replay copies. Same output."""
    from app.core.engine.process import Engine
    from app.core.events.decode import decode_message
    from tables.codecs import decode_state, encode_state

    engine = Engine(EngineConfig())
    engine.use_model(trained_model)
    live, stored_bytes, changes = {}, {}, []
    events = [event for raw in messages for event in decode_message(raw, now=2e9).events]
    for start in range(0, len(events), 2_000):
        result = engine.process(
            events[start : start + 2_000],
            lambda user: live.get(user),
            emitted_at=2e9,
            stored=lambda user: decode_state(stored_bytes[user]) if user in stored_bytes else None,
        )
        for user, state in result.touched.items():
            live[user] = state
            stored_bytes[user] = encode_state(state)
        changes.extend(result.changes)
    assert comparable(changes) == comparable(run(messages, trained_model, batch=2_000))


def test_redelivered_messages_are_skipped_whole():
    """After a crash Kafka redelivers from the last commit: the state knows what it applied."""
    from app.core.engine.process import Engine
    from app.core.events.decode import ClickEvent

    engine = Engine(EngineConfig())
    states: dict = {}
    batch = [ClickEvent("u1", "search", 1_767_225_600.0 + i, event_id=f"e{i}") for i in range(40)]
    positions = [(0, 100 + i // 2) for i in range(40)]  # two events a message
    first = engine.process(batch, states.get, positions=positions)
    states.update(first.touched)
    again = engine.process(batch, states.get, positions=positions)  # more than the 16 ids dedup remembers
    assert first.outcomes == {"ok": 40}
    assert again.outcomes == {"redelivered": 40}
    assert states["u1"].features.events == 40 and states["u1"].applied == (0, 119)
    newer = engine.process([ClickEvent("u1", "search", 1_767_225_700.0)], states.get, positions=[(0, 120)])
    assert newer.outcomes == {"ok": 1}


def test_members_of_a_retired_segment_move_at_once(messages, trained_model):
    """A model that drops a segment moves its members now, without waiting for their next event."""
    pipeline = EmbeddedPipeline(EngineConfig(), model=trained_model, learn=False)
    pipeline.feed(messages, now=2e9)
    gone = trained_model.segment_ids[0]
    members = {user for user, state in pipeline.states.items() if state.membership.segment == gone}
    assert members, "the retired segment had no members to move"
    keep = [i for i, segment in enumerate(trained_model.segment_ids) if segment != gone]
    smaller = replace(
        trained_model, version=trained_model.version + 1,
        centroids=tuple(trained_model.centroids[i] for i in keep),
        segment_ids=tuple(trained_model.segment_ids[i] for i in keep),
        names=tuple(trained_model.names[i] for i in keep),
    )  # fmt: skip
    pipeline.engine.use_model(smaller)
    result = pipeline.engine.retire(pipeline.states.items(), emitted_at=2e9)
    assert {change["user_id"] for change in result.changes} == members
    assert {(c["change"], c["reason"], c["previous"]) for c in result.changes} == {("moved", "segment_retired", gone)}
    assert all(c["segment"] in smaller.segment_ids for c in result.changes)
    assert all(state.membership.segment != gone for state in pipeline.states.values())
    assert not pipeline.engine.retire(pipeline.states.items()).changes  # nothing left to move


def _relabelled(model, **changes):
    """``model`` as a new fit whose segment ids name other segments than before (rotated)."""
    ids, names = model.segment_ids, model.names
    version = model.version + 2  # after an online update (+1) of the same fit
    return replace(model, version=version, segment_ids=ids[1:] + ids[:1], names=names[1:] + names[:1],
                   selection={**(model.selection or {}), "fit_version": version}, **changes)  # fmt: skip


def test_a_new_fit_re_decides_users_who_send_nothing_more(messages, trained_model):
    """Users placed by an earlier fit move under a new one without an event of theirs, a budget at a time."""
    pipeline = EmbeddedPipeline(EngineConfig(), model=trained_model, learn=False)
    pipeline.feed(messages, now=2e9)
    engine = pipeline.engine
    refit = _relabelled(trained_model)
    assert not engine.use_model(replace(trained_model, version=trained_model.version + 1))  # an update, not a fit
    assert engine.use_model(refit)
    engine.sweep.start(pipeline.states)
    first = engine.redecide(pipeline.states.get, budget=50, emitted_at=2e9)
    assert 0 < len(first.touched) <= 50 and len(engine.sweep) == len(pipeline.states) - 50
    rest = engine.redecide(pipeline.states.get, budget=len(engine.sweep), emitted_at=2e9)
    moves = first.changes + rest.changes
    assert {(c["change"], c["reason"], c["model_version"]) for c in moves} == {("moved", "model_refit", refit.version)}
    scores = engine.segmenter.scores([engine.vector(state.features) for state in pipeline.states.values()])
    best = {user: refit.segment_ids[row.argmin()] for user, row in zip(pipeline.states, scores, strict=True)}
    assert all(pipeline.states[c["user_id"]].membership.segment == c["segment"] == best[c["user_id"]] for c in moves)
    placed = [user for user, state in pipeline.states.items() if state.membership.segment != "new"]
    # Every placed user moved, but those whose dwell or odds hold them where they are.
    assert len(moves) >= 0.8 * len(placed), (len(moves), len(placed))
    assert not engine.sweep and not engine.redecide(pipeline.states.get, budget=10).changes


def test_a_replay_ends_with_every_user_re_decided_under_the_last_fit(messages, trained_model):
    pipeline = EmbeddedPipeline(replace(EngineConfig(), segmenter=replace(EngineConfig().segmenter, redecide_per_batch=1)),
                                model=trained_model, learn=False)  # fmt: skip
    pipeline.feed(messages, now=2e9)
    pipeline._adopt(_relabelled(trained_model), pipeline.feed([], now=2e9), 2e9)
    assert len(pipeline.engine.sweep) == len(pipeline.states)
    assert len(pipeline.feed([], now=2e9).changes) <= 1  # one user a batch
    end = pipeline.finish(now=2e9)
    assert {c["reason"] for c in end.changes} == {"model_refit"} and not pipeline.engine.sweep


def _evidence_decisions(users: int) -> list:
    """Each user reaches evidence (5 events over 2 sessions) at their last event, one event per call."""
    from app.core.events.decode import ClickEvent

    start = 1_767_225_600.0
    return [[ClickEvent(f"n{u}", "product_view", start + u + gap) for gap in (0, 60, 120, 7_200, 7_260)]
            for u in range(users)]  # fmt: skip


@pytest.mark.parametrize("warmed_up", [False, True])
def test_first_evidence_is_always_sampled_only_until_the_model_has_warmed_up(trained_model, warmed_up):
    """Before warm-up every user with evidence must reach the learner (a small site gets a
    model); after it, sampling a big site's newcomers by hash alone is enough."""
    from app.core.engine.process import Engine

    config = EngineConfig()
    engine = Engine(config)
    engine.use_model(replace(trained_model, samples=config.learner.warmup if warmed_up else 0))
    states: dict = {}
    sampled = set()
    for user_events in _evidence_decisions(400):
        for event in user_events:
            result = engine.process([event], states.get)
            states.update(result.touched)
            sampled.update(s.user for s in result.samples if s.user is not None)
    if warmed_up:
        # Only hash-sampled decisions (sample_rate 0.1 of 5 decisions each, 1 of them with evidence).
        assert 10 <= len(sampled) <= 100
    else:
        assert len(sampled) == 400
