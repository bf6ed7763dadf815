"""Erasure and withdrawn consent in the engine: every segment is exited, no deadline is left, nothing is kept."""

from __future__ import annotations

import orjson

from app.core.engine.embedded import EmbeddedPipeline
from app.core.engine.erasure import erase
from app.core.engine.process import Engine, EngineConfig
from app.core.events.decode import ClickEvent
from app.core.rules.rulebook import RulesConfig, TriggerConfig
from app.core.segments.learner import Learner, LearnerConfig
from app.core.segments.segment_sizes import SegmentSizes
from app.core.state.user import UserState

T0 = 1_767_225_600.0


def _engine() -> Engine:
    rules = RulesConfig(segments={"carted": "count(add_to_cart, 7d) >= 1"},
                        triggers=TriggerConfig(hot_lead_views=0, win_back_days=0))  # fmt: skip
    return Engine(EngineConfig(rules=rules))


def test_an_erased_user_exits_their_segments_and_their_cart_never_fires():
    engine, states = _engine(), {}
    events = [ClickEvent("u1", "add_to_cart", T0, event_id="c1", value=20.0),
              ClickEvent("u2", "add_to_cart", T0, event_id="c2", value=20.0)]  # fmt: skip
    result = engine.process(events, lambda user: states.get(user), positions=[(0, 1), (0, 2)])
    states.update(result.touched)
    sizes = SegmentSizes()
    sizes.apply(result.changes)
    assert sizes.of("rule", "carted") == 2 and len(engine.deadlines) == 2

    erased = erase(engine, [("u1", states.pop("u1"), "1")], emitted_at=T0 + 60)
    assert [(c["user_id"], c["change"], c["segment"], c["reason"], c["features"]) for c in erased.changes] == [
        ("u1", "exited", "carted", "erased", {})]  # fmt: skip
    assert erased.erased == ["u1"] and not erased.touched
    sizes.apply(erased.changes)
    assert sizes.of("rule", "carted") == 1

    # Long after both deadlines, only the kept user's cart is abandoned.
    engine.watermark.advance_to(T0 + 86_400)
    fired = engine.fire_due(lambda user: states.get(user))
    assert [t["user_id"] for t in fired.triggers] == ["u2"]


def test_an_erased_cluster_member_leaves_their_cluster_segment():
    engine, state = _engine(), UserState()
    state.membership.segment, state.membership.seq = "c3", 7
    sizes = SegmentSizes()
    sizes.apply([{"kind": "cluster", "change": "entered", "segment": "c3", "previous": "new"}])
    result = erase(engine, [("u9", state, "7"), ("never-seen", None, "8")])
    assert [(c["kind"], c["segment"], c["event_id"]) for c in result.changes] == [("cluster", "c3", "u9:8")]
    assert result.erased == ["u9", "never-seen"]
    # Every erased user gets a notice, one this worker never saw too: others may hold their data.
    assert [(n["event_id"], n["erased"]) for n in result.erasures] == [
        ("u9:erased:7", "request"), ("never-seen:erased:8", "request")]  # fmt: skip
    sizes.apply(result.changes)
    assert sizes.of("cluster", "c3") == 0


def test_the_learner_forgets_an_erased_users_sample():
    learner = Learner(LearnerConfig(), features=("a", "b"))
    for i in range(5):
        list(learner.learn([float(i), 1.0], T0 + i, user=f"u{i}"))
    before = set(learner._users)
    learner.forget("u3")
    assert before - set(learner._users) == {"u3"}


def _feed(pipeline, *events):
    out = pipeline.feed([orjson.dumps(event) for event in events], now=T0)
    assert not out.rejects, out.rejects
    return out


def _click(user: str, kind: str, minute: float, **fields) -> dict:
    return {"user_id": user, "type": kind, "ts": T0 + 60 * minute, "event_id": f"{user}-{kind}-{minute}", **fields}


def test_consent_false_withdraws_the_user_and_consent_true_profiles_them_afresh():
    rules = RulesConfig(segments={"carted": "count(add_to_cart, 7d) >= 1"},
                        triggers=TriggerConfig(hot_lead_views=0, win_back_days=0))  # fmt: skip
    pipeline = EmbeddedPipeline(EngineConfig(rules=rules), learn=False)
    # One batch: a cart, the withdrawal, an event that must not be profiled.
    out = _feed(pipeline, _click("u1", "add_to_cart", 0, value=5.0), _click("u2", "add_to_cart", 0, value=5.0),
                _click("u1", "page_view", 1, consent=False), _click("u1", "add_to_cart", 2, value=9.0))  # fmt: skip
    ids = [c["event_id"] for c in out.changes if c["user_id"] == "u1"]
    assert [(c["user_id"], c["change"], c["reason"]) for c in out.changes] == [
        ("u1", "entered", "rule"), ("u2", "entered", "rule"), ("u1", "exited", "erased")]  # fmt: skip
    assert out.outcomes["withdrawn"] == 2 and out.outcomes["ok"] == 2
    # One erasure notice, named after the consent: false event, for downstream systems.
    assert [(n["user_id"], n["erased"]) for n in out.erasures] == [("u1", "consent_withdrawn")]
    assert out.erasures[0]["event_id"] == "u1:erased:u1-page_view-1" and set(out.erasures[0]) == {
        "schema", "event_id", "user_id", "erased", "ts", "emitted_at"}  # fmt: skip  # nothing else of the user
    withdrawn = pipeline.states["u1"]
    assert withdrawn.withdrawn and withdrawn.features.events == 0 and not withdrawn.signals.rules
    assert [p["user_id"] for p in pipeline.profiles()] == ["u2"]
    # The cart of the withdrawn user never fires; the other one does.
    assert [t["user_id"] for t in pipeline.finish(now=T0 + 86_400).triggers + _late_triggers(pipeline)] == ["u2"]

    # A later batch: nothing until consent is given again, then a fresh profile.
    out = _feed(pipeline, _click("u1", "search", 3), _click("u1", "add_to_cart", 4, value=7.0, consent=True))
    assert out.outcomes["withdrawn"] == 1 and out.erasures == []  # already withdrawn: no second notice
    assert [(c["change"], c["segment"]) for c in out.changes] == [("entered", "carted")]
    again = pipeline.states["u1"]
    assert not again.withdrawn and again.features.events == 1
    ids += [c["event_id"] for c in out.changes]
    assert ids == ["u1:1", "u1:2", "u1:3"]  # the change sequence survives the withdrawal: ids stay unique


def _late_triggers(pipeline) -> list[dict]:
    pipeline.engine.watermark.advance_to(T0 + 86_400)
    return pipeline.engine.fire_due(pipeline.states.get).triggers
