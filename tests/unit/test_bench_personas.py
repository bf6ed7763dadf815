"""The quality benchmark's persona generator (bench/personas.py): deterministic, valid, planted as asked."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from app.core.events.decode import KNOWN_TYPES, decode_message
from bench.personas import BEHAVIOURS, PersonaSpec, build

NOW = datetime(2027, 1, 1).timestamp()  # after every generated event


def _decode(messages):
    events, rejects = [], []
    for raw in messages:
        decoded = decode_message(raw, now=NOW)
        events.extend(decoded.events)
        rejects.extend(decoded.rejects)
    return events, rejects


@pytest.fixture(scope="module")
def nine():
    messages, truth = build(PersonaSpec(k=9, users=540, seed=3))
    events, rejects = _decode(messages)
    assert rejects == []
    return messages, truth, events


def _per_user(events):
    by_user = defaultdict(list)
    for event in events:
        by_user[event.user_id].append(event)
    return by_user


def _zone(user_events):
    identify = [e for e in user_events if e.type == "identify"]
    return ZoneInfo(identify[0].traits["timezone"] if identify else "UTC")


def _session_starts(user_events):
    """(local datetime of each session's first event) for one user."""
    zone, seen, starts = _zone(user_events), set(), []
    for event in user_events:
        if event.session_id and event.session_id not in seen:
            seen.add(event.session_id)
            starts.append(datetime.fromtimestamp(event.ts, zone))
    return starts


def _by_persona(truth, by_user, measure):
    out = defaultdict(list)
    for user, persona in truth.items():
        value = measure(by_user[user])
        if value is not None:
            out[persona].append(value)
    return out


def test_same_spec_same_bytes_and_another_seed_differs():
    spec = PersonaSpec(k=6, users=120, days=7, seed=11)
    assert build(spec) == build(spec)
    assert build(PersonaSpec(k=6, users=120, days=7, seed=12))[0] != build(spec)[0]


@pytest.mark.parametrize("k", [3, 6, 9])
def test_plants_k_unequal_personas_and_every_event_is_valid(k):
    messages, truth = build(PersonaSpec(k=k, users=300, days=7, seed=5))
    events, rejects = _decode(messages)
    assert rejects == []
    sizes = Counter(truth.values())
    assert set(sizes) == {b.name for b in BEHAVIOURS[:k]}
    assert len(truth) == 300 and max(sizes.values()) >= 2 * min(sizes.values())
    assert {e.type for e in events} <= KNOWN_TYPES
    assert {e.user_id for e in events} == set(truth)  # every planted user shows up, nobody else
    assert len({e.event_id for e in events}) == len(events)
    times = [min(e.ts for e in decode_message(m, now=NOW).events) for m in messages]
    assert times == sorted(times)  # messages in order of session start


def test_night_owl_differs_from_commuter_in_hours_not_cadence(nine):
    _, truth, events = nine
    by_user = _per_user(events)

    def night_share(user_events):
        starts = _session_starts(user_events)
        return sum(s.hour >= 22 or s.hour < 3 for s in starts) / len(starts)

    night = _by_persona(truth, by_user, night_share)
    assert statistics.mean(night["night_owl"]) > 0.9
    assert statistics.mean(night["commuter"]) < 0.05
    sessions = _by_persona(truth, by_user, lambda ev: len(_session_starts(ev)))
    ratio = statistics.mean(sessions["night_owl"]) / statistics.mean(sessions["commuter"])
    assert 0.7 < ratio < 1.4


def test_occasional_differs_from_commuter_in_cadence_not_hours(nine):
    _, truth, events = nine
    by_user = _per_user(events)
    sessions = _by_persona(truth, by_user, lambda ev: len(_session_starts(ev)))
    assert statistics.mean(sessions["commuter"]) > 5 * statistics.mean(sessions["occasional"])

    def commute_share(user_events):
        starts = _session_starts(user_events)
        return sum(7 <= s.hour < 10 or 17 <= s.hour < 20 for s in starts) / len(starts)

    hours = _by_persona(truth, by_user, commute_share)
    assert statistics.mean(hours["occasional"]) > 0.9 and statistics.mean(hours["commuter"]) > 0.9


def test_other_behaviours_differ_where_planted(nine):
    _, truth, events = nine
    by_user = _per_user(events)
    purchases = _by_persona(truth, by_user, lambda ev: [e.value for e in ev if e.type == "purchase"] or None)
    mean_value = {p: statistics.mean(v for values in lists for v in values) for p, lists in purchases.items()}
    assert mean_value["big_ticket"] > 5 * mean_value["commuter"]
    assert mean_value["deal_hunter"] < mean_value["replenisher"] / 3

    def basket(user_events):
        adds = Counter(e.session_id for e in user_events if e.type == "add_to_cart")
        return statistics.mean(adds.values()) if adds else None

    baskets = _by_persona(truth, by_user, basket)
    assert statistics.mean(baskets["replenisher"]) > 2 * statistics.mean(baskets["weekend"])

    def share(kind):
        return lambda ev: sum(e.device == kind for e in ev if e.device) / max(1, sum(1 for e in ev if e.device))

    tablet = _by_persona(truth, by_user, share("tablet"))
    assert statistics.mean(tablet["tablet_evening"]) > 0.7 > 0.1 > statistics.mean(tablet["commuter"])
    breadth = _by_persona(truth, by_user, lambda ev: len({e.category for e in ev if e.category}))
    assert statistics.mean(breadth["deal_hunter"]) > 2 * statistics.mean(breadth["replenisher"])
    weekend = _by_persona(truth, by_user, lambda ev: statistics.mean(s.weekday() >= 5 for s in _session_starts(ev)))
    assert statistics.mean(weekend["weekend"]) > 0.9 and statistics.mean(weekend["lunch_regular"]) < 0.1


def test_some_users_declare_a_time_zone():
    messages, truth = build(PersonaSpec(k=3, users=200, days=3, seed=2))
    events, _ = _decode(messages)
    zones = {e.user_id: e.traits["timezone"] for e in events if e.type == "identify"}
    assert 0.4 * len(truth) < len(zones) < 0.9 * len(truth)
    assert len(set(zones.values())) >= 4


def _first_seen_day(spec):
    """Day (since the start, UTC) of each commuter's first event; commuters are active most days."""
    messages, truth = build(spec)
    events, _ = _decode(messages)
    start = datetime(2026, 9, 7).timestamp()
    first = {}
    for event in events:
        first.setdefault(event.user_id, (event.ts - start) / 86_400)
    return [day for user, day in first.items() if truth[user] == "commuter"], events


def test_stationary_users_arrive_at_once_and_nothing_changes():
    spec = PersonaSpec(k=6, users=300, seed=4, stationary=True)
    stationary, events = _first_seen_day(spec)
    assert statistics.mean(day < 3 for day in stationary) > 0.95  # all arrive on day 0 or 1
    staggered, _ = _first_seen_day(PersonaSpec(k=6, users=300, seed=4))
    assert statistics.mean(day > 3 for day in staggered) > 0.4  # by default over the first 10 days
    start = datetime(2026, 9, 7).timestamp()
    values = defaultdict(list)  # order values by week: the sale of the default mode is absent
    for event in events:
        if event.type == "purchase":
            values[int((event.ts - start) // (7 * 86_400))].append(event.value)
    weekly = [statistics.mean(v) for _, v in sorted(values.items()) if len(v) > 30]
    assert len(weekly) == 3 and max(weekly) < 1.25 * min(weekly)
