"""Triggers on hand-made timelines: exact outputs, event time only, each firing once."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.engine.embedded import EmbeddedPipeline
from app.core.engine.process import EngineConfig
from app.core.events.decode import ClickEvent, format_ts
from app.core.rules.rulebook import CustomTrigger, RulesConfig, TriggerConfig

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
MIN = 60.0
LATENESS = EngineConfig().features.allowed_lateness_s  # 600 s


def engine_config(**triggers) -> EngineConfig:
    defaults = {"hot_lead_views": 0, "win_back_days": 0}  # only what a test turns on
    return EngineConfig(rules=RulesConfig(segments={}, triggers=TriggerConfig(**{**defaults, **triggers})))


class Timeline:
    """Feeds events one message at a time, like a stream, and collects the triggers."""

    def __init__(self, config: EngineConfig) -> None:
        self.pipeline = EmbeddedPipeline(config, learn=False)
        self.triggers: list[dict] = []

    def send(self, user: str, kind: str, at_min: float, **fields) -> Timeline:
        event = ClickEvent(user, kind, T0 + at_min * MIN, event_id=f"{user}-{kind}-{at_min}", **fields)
        result = self.pipeline.feed([orjson.dumps(event.to_dict())], now=event.ts)
        assert not result.rejects, result.rejects
        self.triggers += result.triggers
        return self

    def end(self) -> list[dict]:
        self.triggers += self.pipeline.finish(now=T0).triggers
        return self.triggers


def fired(triggers: list[dict]) -> list[tuple[str, str, str]]:
    return [(t["event_id"], t["trigger"], t["ts"]) for t in triggers]


def at(minutes: float) -> str:
    return format_ts(T0 + minutes * MIN)


def test_cart_abandon_fires_once_at_the_deadline_with_the_items():
    line = Timeline(engine_config())
    line.send("a", "add_to_cart", 0, page="/p/1", category="books", value=10.0)
    line.send("a", "add_to_cart", 5, page="/p/2", category="toys", value=15.5)
    # Other users' events move the watermark: 35 min + 10 min lateness is past a's deadline (35 min).
    line.send("b", "page_view", 44)
    assert line.triggers == []  # watermark 34 min: not yet
    line.send("b", "page_view", 46)
    assert fired(line.triggers) == [("a:cart_abandon:1", "cart_abandon", at(35))]
    details = line.triggers[0]["details"]
    assert details["value"] == 25.5 and [i["page"] for i in details["items"]] == ["/p/1", "/p/2"]
    line.send("b", "page_view", 300)
    assert fired(line.end()) == [("a:cart_abandon:1", "cart_abandon", at(35))]  # once


def test_a_purchase_exactly_at_the_deadline_saves_the_cart():
    line = Timeline(engine_config())
    line.send("a", "add_to_cart", 0, value=10.0).send("a", "purchase", 30, value=10.0)
    line.send("b", "page_view", 200)
    assert line.end() == []


def test_a_purchase_after_the_deadline_does_not_save_it():
    line = Timeline(engine_config())
    line.send("a", "add_to_cart", 0, value=10.0).send("a", "purchase", 30.5, value=10.0)
    assert fired(line.end()) == [("a:cart_abandon:1", "cart_abandon", at(30))]


def test_late_events_within_the_lateness_still_count():
    line = Timeline(engine_config())
    line.send("a", "add_to_cart", 0, value=10.0)
    line.send("b", "page_view", 35)  # watermark 25 min
    line.send("a", "purchase", 20, value=10.0)  # late for the stream, but within the lateness
    line.send("b", "page_view", 100)
    assert line.end() == []


def test_events_later_than_the_lateness_change_nothing():
    line = Timeline(engine_config())
    line.send("a", "add_to_cart", 0, value=10.0)
    line.send("a", "page_view", 45)  # the user's own clock is now at 45 min
    line.send("a", "purchase", 20, value=10.0)  # 25 min behind it: late, dropped
    assert fired(line.end()) == [("a:cart_abandon:1", "cart_abandon", at(30))]
    assert line.pipeline.states["a"].features.late == 1


def test_several_carts_in_a_row_each_fire_once():
    line = Timeline(engine_config())
    line.send("a", "add_to_cart", 0, page="/p/1", value=1.0)
    line.send("a", "add_to_cart", 40, page="/p/2", value=2.0)  # after the first deadline: a new cart
    line.send("a", "purchase", 50, value=2.0)  # saves the second
    line.send("a", "add_to_cart", 120, page="/p/3", value=3.0)
    line.send("b", "page_view", 150)
    triggers = line.end()
    assert fired(triggers) == [("a:cart_abandon:1", "cart_abandon", at(30)),
                               ("a:cart_abandon:2", "cart_abandon", at(150))]  # fmt: skip
    assert [t["details"]["value"] for t in triggers] == [1.0, 3.0]


def test_a_user_who_never_comes_back_fires_on_other_users_events():
    line = Timeline(engine_config())
    line.send("gone", "add_to_cart", 0, value=5.0)
    for minute in range(10, 100, 10):
        line.send("other", "page_view", minute)
    assert fired(line.triggers) == [("gone:cart_abandon:1", "cart_abandon", at(30))]


def test_end_of_input_fires_deadlines_up_to_the_last_event_time():
    line = Timeline(engine_config())
    line.send("a", "add_to_cart", 0, value=5.0).send("b", "page_view", 30)
    assert fired(line.end()) == [("a:cart_abandon:1", "cart_abandon", at(30))]
    line = Timeline(engine_config())
    line.send("a", "add_to_cart", 0, value=5.0).send("b", "page_view", 29)
    assert line.end() == []


def test_removing_every_item_empties_the_cart():
    line = Timeline(engine_config())
    line.send("a", "add_to_cart", 0, page="/p/1", value=5.0).send("a", "remove_from_cart", 1, page="/p/1")
    line.send("b", "page_view", 100)
    assert line.end() == []


def test_hot_lead_fires_when_the_burst_starts_and_rearms_after_it():
    line = Timeline(engine_config(hot_lead_views=3, hot_lead_window_s=300))
    for minute in (0, 1, 2, 3):
        line.send("a", "product_view", minute)
    for minute in (60, 61, 62):
        line.send("a", "product_view", minute)
    assert fired(line.end()) == [("a:hot_lead:1", "hot_lead", at(2)), ("a:hot_lead:2", "hot_lead", at(62))]


def test_win_back_fires_when_recency_crosses_the_threshold():
    line = Timeline(engine_config(win_back_days=1, cart_abandon_s=0))
    line.send("a", "purchase", 0, value=5.0)
    line.send("a", "purchase", 600, value=5.0)  # 10 h later: the clock restarts
    line.send("b", "page_view", 600 + 24 * 60 + 11)
    assert fired(line.triggers) == [("a:win_back:1", "win_back", at(600 + 24 * 60))]


def test_custom_trigger_not_followed_by():
    checkout = CustomTrigger("checkout_stalled", when="event == 'checkout'", unless="purchase", within_s=600)
    line = Timeline(engine_config(cart_abandon_s=0, custom=(checkout,)))
    line.send("a", "checkout", 0).send("a", "purchase", 5, value=1.0)  # followed in time
    line.send("b", "checkout", 0).send("b", "page_view", 5)  # not followed
    line.send("c", "page_view", 10)
    assert fired(line.end()) == [("b:checkout_stalled:1", "checkout_stalled", at(10))]


def test_custom_trigger_without_unless_fires_on_the_rising_edge():
    big = CustomTrigger("big_spender", when="monetary > 100")
    line = Timeline(engine_config(cart_abandon_s=0, custom=(big,)))
    line.send("a", "purchase", 0, value=60.0).send("a", "purchase", 1, value=60.0).send("a", "purchase", 2, value=60.0)
    assert fired(line.end()) == [("a:big_spender:1", "big_spender", at(1))]


def test_triggers_do_not_depend_on_batch_boundaries():
    from app.simulator import Scenario, generate

    messages = [m.to_bytes() for m in generate(Scenario(users=200, events=8_000, seed=5))]
    outputs = []
    for batch in (1, 250, 8_000):
        pipeline = EmbeddedPipeline(EngineConfig(), learn=False)
        triggers = [t for i in range(0, len(messages), batch) for t in pipeline.feed(messages[i : i + batch], now=T0).triggers]
        triggers += pipeline.finish(now=T0).triggers
        outputs.append(sorted((t["event_id"], t["ts"]) for t in triggers))
    assert outputs[0] and outputs[0] == outputs[1] == outputs[2]


@pytest.mark.parametrize("bad", [dict(unless="purchase"), dict(within_s=60)])
def test_unless_and_within_go_together(bad):
    with pytest.raises(ValueError, match="go together"):
        CustomTrigger("x", when="true", **bad)


def test_a_config_with_a_bad_rule_fails_at_start_up():
    from app.core.rules.language import RuleError

    with pytest.raises(RuleError, match="rule 'vip', position 10"):
        replace(EngineConfig(), rules=RulesConfig(segments={"vip": "monetary >"}))


_cart_events = st.lists(
    st.tuples(st.sampled_from(["add_to_cart", "remove_from_cart", "purchase", "checkout"]),
              st.floats(min_value=0, max_value=3 * 86_400), st.text(max_size=3)),  # fmt: skip
    max_size=200,
)


@settings(max_examples=60, deadline=None)
@given(_cart_events)
def test_trigger_state_stays_bounded_whatever_the_user_sends(stream):
    """Carts and pending deadlines have a size bound, even for a user far ahead of the watermark."""
    from app.core.triggers.signals import MAX_PENDING, Signals

    cfg = TriggerConfig(win_back_days=1)
    custom = (("stalled", "purchase"),)
    signals = Signals()
    fired = []
    for kind, offset, page in sorted(stream, key=lambda item: item[1]):
        event = ClickEvent("u", kind, T0 + offset, page="p" * 2_000 + page, category="c" * 300, value=1.0)
        signals.on_event(event, cfg, custom, T0 + offset if kind == "purchase" else None)
        fired += signals.fire_overflow("u", "-")  # as the engine does after each batch
        assert len(signals.cart) <= cfg.cart_max_items and len(signals.due) <= MAX_PENDING
        assert len(orjson.dumps(signals.to_record())) <= 12_000
    # Early firing keeps the deadline order, so ids still follow it.
    carts = [t for t in fired if t["trigger"] == "cart_abandon"]
    assert [t["event_id"] for t in carts] == [f"u:cart_abandon:{n}" for n in range(1, len(carts) + 1)]
    assert [t["ts"] for t in carts] == sorted(t["ts"] for t in carts)
