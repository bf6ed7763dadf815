"""Tests of the persona-driven traffic simulator (app/simulator.py)."""

from __future__ import annotations

import collections
import statistics

import orjson
import pytest

from app.simulator import (
    MAX_LATENESS_MS,
    PERSONAS,
    SESSION_GAP_MS,
    Message,
    Scenario,
    assign_personas,
    generate,
)

EVENT_TYPES = {
    "page_view", "product_view", "search", "add_to_cart", "remove_from_cart",
    "checkout", "purchase", "identify",
}
COMMON_FIELDS = {
    "user_id": str, "type": str, "ts": int, "event_id": str, "session_id": str,
    "device": str, "page": str, "category": str,
}
VALUE_TYPES = {"add_to_cart", "checkout", "purchase"}
VIEW_TYPES = {"page_view", "product_view"}
COUNTRIES = {"US", "GB", "DE", "FR", "ES", "IT", "NL", "other"}

SMALL = Scenario(users=40, events=2_000, seed=11)


def events_of(messages: list[Message]) -> list[dict]:
    return [event for message in messages for event in message.events]


def by_user(events: list[dict]) -> dict[str, list[dict]]:
    users: dict[str, list[dict]] = collections.defaultdict(list)
    for event in events:
        users[event["user_id"]].append(event)
    return users


def unique(events: list[dict]) -> list[dict]:
    """Drop re-emitted duplicates, keeping the first copy of each event_id."""
    seen: set[str] = set()
    kept = []
    for event in events:
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            kept.append(event)
    return kept


@pytest.fixture(scope="module")
def small_events() -> list[dict]:
    return events_of(list(generate(SMALL)))


# A scenario large enough for per-persona statistics, still well under a second.
PERSONA_SCENARIO = Scenario(users=500, events=25_000, seed=5, shift_strength=0.0)


@pytest.fixture(scope="module")
def persona_features() -> dict[str, dict[str, float]]:
    """Mean per-user features by persona (the features the segmenter clusters on)."""
    truth = assign_personas(PERSONA_SCENARIO)
    per_user = by_user(unique(events_of(list(generate(PERSONA_SCENARIO)))))
    rows: dict[str, list[dict[str, float]]] = collections.defaultdict(list)
    for user_id, events in per_user.items():
        sessions: dict[str, list[dict]] = collections.defaultdict(list)
        for event in sorted(events, key=lambda e: e["ts"]):
            sessions[event["session_id"]].append(event)
        adds = abandoned = 0
        for session in sessions.values():
            bought_later = False
            for event in reversed(session):
                if event["type"] == "purchase":
                    bought_later = True
                elif event["type"] == "add_to_cart":
                    adds += 1
                    abandoned += not bought_later
        purchases = [e["value"] for e in events if e["type"] == "purchase"]
        views = [e for e in events if e["type"] in VIEW_TYPES]
        row = {
            "conversion": len(purchases) / len(sessions),
            "sessions": len(sessions),
            "product_views_per_session": sum(e["type"] == "product_view" for e in events) / len(sessions),
            "search_share": sum(e["type"] == "search" for e in events) / len(events),
            "mobile_share": sum(e["device"] == "mobile" for e in events) / len(events),
            "scroll": statistics.fmean(e["scroll_depth"] for e in views),
            "dwell": statistics.fmean(e["dwell_ms"] for e in views),
            "cart_sessions": sum(any(e["type"] == "add_to_cart" for e in s) for s in sessions.values())
            / len(sessions),
        }
        if purchases:
            row["order_value"] = statistics.fmean(purchases)
        if adds:
            row["abandon_rate"] = abandoned / adds
        rows[truth[user_id]].append(row)
    table = {}
    for persona, persona_rows in rows.items():
        names = {name for row in persona_rows for name in row}
        table[persona] = {
            name: statistics.fmean(row[name] for row in persona_rows if name in row) for name in names
        }
        table[persona]["purchases"] = sum(row["conversion"] * row["sessions"] for row in persona_rows)
    return table


# --- determinism and counts ---------------------------------------------------------


def test_same_seed_gives_identical_stream():
    assert list(generate(SMALL)) == list(generate(SMALL))
    assert assign_personas(SMALL) == assign_personas(SMALL)


def test_different_seed_gives_different_stream():
    other = Scenario(users=SMALL.users, events=SMALL.events, seed=SMALL.seed + 1)
    assert events_of(list(generate(SMALL))) != events_of(list(generate(other)))


@pytest.mark.parametrize(
    "scenario",
    [
        SMALL,
        Scenario(users=7, events=7, seed=1),  # only identify events
        Scenario(users=3, events=1_001, seed=2, events_per_message=4),
        Scenario(users=50, events=3_000, seed=3, late_fraction=0.2, duplicate_fraction=0.1),
    ],
)
def test_exact_event_count(scenario):
    assert len(events_of(list(generate(scenario)))) == scenario.events


def test_scenario_rejects_fewer_events_than_users():
    with pytest.raises(ValueError, match="at least users"):
        Scenario(users=10, events=9)


def test_every_user_gets_events_and_ground_truth(small_events):
    truth = assign_personas(SMALL)
    assert set(truth) == {e["user_id"] for e in small_events}
    assert len(truth) == SMALL.users
    assert collections.Counter(truth.values()) == {p: SMALL.users // len(PERSONAS) for p in PERSONAS}


def test_persona_weights_by_name():
    truth = assign_personas(Scenario(users=20, events=200, persona_weights={"big_spender": 1.0}))
    assert set(truth.values()) == {"big_spender"}


# --- the event contract -------------------------------------------------------------


def assert_valid_event(event: dict) -> None:
    for name, kind in COMMON_FIELDS.items():
        assert type(event[name]) is kind, (name, event)
    assert event["type"] in EVENT_TYPES
    assert event["device"] in {"mobile", "desktop", "tablet"}
    assert event["page"].startswith("/")
    assert event["event_id"].startswith(event["user_id"] + "-")
    assert event["session_id"].startswith(event["user_id"] + "-")
    assert event["ts"] >= SMALL.start_ms
    if event["type"] in VALUE_TYPES:
        assert type(event["value"]) is float and event["value"] >= 0
    else:
        assert "value" not in event
    if event["type"] in VIEW_TYPES:
        assert type(event["scroll_depth"]) is float and 0.0 <= event["scroll_depth"] <= 1.0
        assert type(event["dwell_ms"]) is int and event["dwell_ms"] >= 0
    else:
        assert "scroll_depth" not in event and "dwell_ms" not in event
    if event["type"] == "identify":
        assert event["consent"] is True
        assert set(event["traits"]) == {"age", "country"}
        assert type(event["traits"]["age"]) is int and 0 < event["traits"]["age"] < 120
        assert event["traits"]["country"] in COUNTRIES
    # JSON round trip gives the same event: nothing unserialisable, no float/int mix-up.
    assert orjson.loads(orjson.dumps(event)) == event


def test_every_event_follows_the_contract(small_events):
    for event in small_events:
        assert_valid_event(event)
    assert {e["type"] for e in small_events} == EVENT_TYPES


def test_first_event_of_each_user_is_its_only_identify(small_events):
    for user_id, events in by_user(small_events).items():
        assert events[0]["type"] == "identify", user_id
        assert events[0]["event_id"] == f"{user_id}-0"
        assert sum(e["type"] == "identify" for e in events) == 1


def test_event_ids_are_unique_except_exact_duplicates():
    scenario = Scenario(users=50, events=5_000, seed=4, duplicate_fraction=0.05)
    copies: dict[str, list[dict]] = collections.defaultdict(list)
    for event in events_of(list(generate(scenario))):
        copies[event["event_id"]].append(event)
    repeated = [group for group in copies.values() if len(group) > 1]
    assert all(len(group) == 2 and group[0] == group[1] for group in repeated)
    # About 5 % of the events are re-emitted (the first event of a session never is).
    assert 0.02 * scenario.events < len(repeated) < 0.08 * scenario.events


def test_sessions_are_separated_by_the_session_gap():
    # Many late events: a session's last events are often late ones, and the next
    # session must still start more than the session gap after them.
    scenario = Scenario(users=100, events=20_000, seed=2, late_fraction=0.5)
    for events in by_user(unique(events_of(list(generate(scenario))))).values():
        events = sorted(events, key=lambda e: e["ts"])
        for before, after in zip(events, events[1:]):
            gap = after["ts"] - before["ts"]
            if before["session_id"] == after["session_id"]:
                assert gap < SESSION_GAP_MS
                assert before["device"] == after["device"]
            else:
                assert gap > SESSION_GAP_MS


# --- ordering -----------------------------------------------------------------------
#
# "Behind" means: an event's ts is below the largest ts emitted before it (in the whole
# stream, or among the same user's events). Late events and duplicates may be behind,
# never by more than MAX_LATENESS_MS; every other event is not behind at all.


def lateness(events: list[dict]) -> list[int]:
    """For each event, how far its ts is below the largest ts emitted before it (>= 0)."""
    behind, newest = [], None
    for event in events:
        newest = event["ts"] if newest is None else max(newest, event["ts"])
        behind.append(newest - event["ts"])
    return behind


def test_stream_is_in_event_time_order_without_late_events_or_duplicates():
    scenario = Scenario(users=60, events=4_000, seed=8, late_fraction=0.0, duplicate_fraction=0.0)
    assert max(lateness(events_of(list(generate(scenario))))) == 0


def test_late_events_are_never_more_than_the_bound_behind_the_stream():
    scenario = Scenario(users=60, events=10_000, seed=9, late_fraction=0.05, duplicate_fraction=0.01)
    behind = lateness(events_of(list(generate(scenario))))
    assert max(behind) <= MAX_LATENESS_MS
    # The late events do exist (about 6 % of all, fewer as some are not overtaken).
    assert 0.02 * scenario.events < sum(b > 0 for b in behind) < 0.07 * scenario.events
    assert max(behind) > MAX_LATENESS_MS // 2


def test_per_user_order_holds_with_several_events_per_message():
    scenario = Scenario(users=60, events=10_000, seed=9, late_fraction=0.05, events_per_message=5)
    for events in by_user(events_of(list(generate(scenario)))).values():
        assert max(lateness(events)) <= MAX_LATENESS_MS


# --- several events per message -----------------------------------------------------


def test_messages_hold_up_to_k_events_of_one_user():
    scenario = Scenario(users=30, events=3_000, seed=6, events_per_message=8)
    messages = list(generate(scenario))
    assert all(1 <= len(m.events) <= 8 for m in messages)
    assert all({e["user_id"] for e in m.events} == {m.key} for m in messages)
    assert max(len(m.events) for m in messages) == 8
    assert len(messages) < scenario.events / 2  # they really are batched


def test_a_session_end_flushes_the_users_buffer():
    scenario = Scenario(
        users=30, events=3_000, seed=6, late_fraction=0.0, duplicate_fraction=0.0, events_per_message=10_000
    )
    messages = list(generate(scenario))
    sessions = {e["session_id"] for e in events_of(messages)}
    # K is never reached, so every message is exactly one whole session.
    assert all(len({e["session_id"] for e in m.events}) == 1 for m in messages)
    assert len(messages) == len(sessions)


def test_batching_keeps_each_users_sequence():
    single = Scenario(users=30, events=3_000, seed=6, late_fraction=0.05)
    batched = Scenario(users=30, events=3_000, seed=6, late_fraction=0.05, events_per_message=8)
    assert by_user(events_of(list(generate(single)))) == by_user(events_of(list(generate(batched))))


def test_single_event_messages_are_keyed_by_user(small_events):
    messages = list(generate(SMALL))
    assert all(len(m.events) == 1 and m.events[0]["user_id"] == m.key for m in messages)


# --- personas -----------------------------------------------------------------------


def test_big_spenders_spend_far_more_per_order(persona_features):
    big = persona_features["big_spender"]["order_value"]
    assert big > 5 * persona_features["bargain_hunter"]["order_value"]
    assert 200 <= big <= 1200
    assert persona_features["big_spender"]["conversion"] > 0.45


def test_bargain_hunters_search_a_lot_on_cheap_things(persona_features):
    bargain = persona_features["bargain_hunter"]
    assert 0.2 < bargain["search_share"] < 0.4
    assert 5 <= bargain["order_value"] <= 30
    others = [persona_features[p]["search_share"] for p in PERSONAS if p != "bargain_hunter"]
    assert bargain["search_share"] > 2.5 * max(others)


def test_window_shoppers_browse_deeply_and_do_not_buy(persona_features):
    window = persona_features["window_shopper"]
    assert window["purchases"] == 0
    assert window["cart_sessions"] < 0.03
    assert window["scroll"] > 0.7
    assert window["scroll"] == max(persona_features[p]["scroll"] for p in PERSONAS)


def test_cart_abandoners_fill_carts_and_leave(persona_features):
    abandoner = persona_features["cart_abandoner"]
    assert abandoner["abandon_rate"] > 0.7
    assert abandoner["cart_sessions"] > 0.6
    assert abandoner["conversion"] < 0.12
    assert abandoner["mobile_share"] == max(persona_features[p]["mobile_share"] for p in PERSONAS)


def test_loyal_regulars_come_back_most_and_buy_often(persona_features):
    loyal = persona_features["loyal_regular"]
    assert loyal["sessions"] == max(persona_features[p]["sessions"] for p in PERSONAS)
    assert 0.35 < loyal["conversion"] < 0.65
    assert 20 <= loyal["order_value"] <= 80


def test_big_spenders_are_desktop_users_with_long_dwell(persona_features):
    big = persona_features["big_spender"]
    assert big["mobile_share"] < 0.25
    assert big["dwell"] > 2 * persona_features["bargain_hunter"]["dwell"]


# --- behaviour shift ----------------------------------------------------------------


def purchases_and_mobile_around(scenario: Scenario) -> tuple[float, float, float, float]:
    """Mean purchase value and mobile share before and after the shift point."""
    events = unique(events_of(list(generate(scenario))))
    cut = int(scenario.shift_at * len(events))
    halves = []
    for part in (events[:cut], events[cut:]):
        values = [e["value"] for e in part if e["type"] == "purchase"]
        halves.append((statistics.fmean(values), sum(e["device"] == "mobile" for e in part) / len(part)))
    (value_before, mobile_before), (value_after, mobile_after) = halves
    return value_before, value_after, mobile_before, mobile_after


def test_shift_raises_prices_and_mobile_share():
    # Only loyal regulars: their narrow price range keeps the mean stable.
    scenario = Scenario(users=200, events=12_000, seed=12, persona_weights={"loyal_regular": 1.0})
    value_before, value_after, mobile_before, mobile_after = purchases_and_mobile_around(scenario)
    assert value_after > 1.3 * value_before
    assert mobile_after > mobile_before + 0.15


def test_no_shift_without_strength():
    scenario = Scenario(
        users=200, events=12_000, seed=12, persona_weights={"loyal_regular": 1.0}, shift_strength=0.0
    )
    value_before, value_after, mobile_before, mobile_after = purchases_and_mobile_around(scenario)
    assert abs(value_after / value_before - 1) < 0.15
    assert abs(mobile_after - mobile_before) < 0.08


def test_shift_leaves_personas_alone():
    shifted = Scenario(users=50, events=1_000, seed=3, shift_strength=2.0)
    assert assign_personas(shifted) == assign_personas(Scenario(users=50, events=1_000, seed=3))


# --- against the decoder, and through the command -----------------------------------


def test_every_message_passes_the_click_event_decoder():
    events_module = pytest.importorskip("app.core.events.decode")
    scenario = Scenario(users=30, events=1_500, seed=13, events_per_message=6)
    now = (scenario.start_ms + 30 * 86_400_000) / 1000
    decoded = 0
    for message in generate(scenario):
        result = events_module.decode_message(message.to_bytes(), now=now)
        assert result.rejects == []
        decoded += len(result.events)
    assert decoded == scenario.events


def run_command(*argv: str) -> int:
    import argparse

    from app.commands import simulate

    parser = argparse.ArgumentParser(prog="segstream")
    simulate.add_parser(parser.add_subparsers())
    args = parser.parse_args(["simulate", *argv])
    return args.run(args)


def test_simulate_command_writes_json_lines_and_truth(tmp_path, capsys):
    out, truth = tmp_path / "clicks.jsonl", tmp_path / "truth.csv"
    argv = ["--users", "20", "--events", "600", "--seed", "4", "--per-message", "3"]
    assert run_command(*argv, "--out", str(out), "--truth", str(truth)) == 0
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    expected = list(generate(Scenario(users=20, events=600, seed=4, events_per_message=3)))
    assert len(lines) == len(expected)
    for line, message in zip(lines, expected):
        # One event: a bare object; several: an array.
        assert line == (list(message.events) if len(message.events) > 1 else message.events[0])
    rows = truth.read_text().splitlines()
    assert rows[0] == "user_id,persona"
    assert dict(row.split(",") for row in rows[1:]) == assign_personas(Scenario(users=20, events=600, seed=4))
    assert "600 events" in capsys.readouterr().err


def test_simulate_command_rejects_a_bad_scenario(capsys):
    assert run_command("--users", "10", "--events", "5", "--out", "-") == 2
    assert "at least users" in capsys.readouterr().err
