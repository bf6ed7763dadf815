"""Per-user features over event time: windows, lateness, sessions, RFM, dedup and the size bound."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.features import DUPLICATE, LATE, OK, FeatureConfig, UserFeatures
from tests.conftest import T0, click

CFG = FeatureConfig()
MIN, HOUR, DAY = 60.0, 3_600.0, 86_400.0


def feed(user: UserFeatures, *events) -> list[str]:
    return [user.apply(event, CFG) for event in events]


def test_sliding_windows_count_by_event_time():
    user = UserFeatures()
    feed(user, *(click(ts=T0 + i * MIN) for i in range(10)))  # one a minute, for 10 minutes
    now = T0 + 9 * MIN
    snap = user.snapshot(now, CFG)
    # 5 min window with 1 min buckets: the events of minutes 4..9 (the oldest bucket counts whole).
    assert snap["activity_5m"] == 6
    assert snap["activity_1h"] == snap["activity_24h"] == snap["activity_7d"] == 10
    later = user.snapshot(now + 2 * HOUR, CFG)
    assert (later["activity_5m"], later["activity_1h"], later["activity_24h"]) == (0, 0, 10)
    assert user.snapshot(now + 8 * DAY, CFG)["activity_7d"] == 0


def test_late_event_within_allowed_lateness_lands_in_its_window():
    user = UserFeatures()
    assert feed(user, click(ts=T0 + 20 * MIN), click(ts=T0 + 11 * MIN)) == [OK, OK]  # 9 min late
    snap = user.snapshot(T0 + 20 * MIN, CFG)
    assert snap["activity_1h"] == 2 and snap["events"] == 2 and snap["late_events"] == 0
    # The late event sits in the bucket of its own time, outside the 5 minute window.
    assert snap["activity_5m"] == 1


def test_event_older_than_allowed_lateness_is_counted_late_and_changes_nothing():
    user = UserFeatures()
    feed(user, click(ts=T0 + HOUR))
    before = user.snapshot(T0 + HOUR, CFG)
    assert feed(user, click(kind="purchase", ts=T0 + HOUR - 11 * MIN, value=50.0)) == [LATE]
    after = user.snapshot(T0 + HOUR, CFG)
    assert after["late_events"] == 1
    assert {k: v for k, v in after.items() if k != "late_events"} == {
        k: v for k, v in before.items() if k != "late_events"
    }


def test_sessions_split_on_thirty_minute_gap():
    user = UserFeatures()
    feed(user, click(ts=T0), click(ts=T0 + 10 * MIN), click(ts=T0 + 41 * MIN), click(ts=T0 + 45 * MIN))
    snap = user.snapshot(T0 + 45 * MIN, CFG)
    assert snap["sessions"] == 2
    assert snap["mean_session_s"] == (10 * MIN + 4 * MIN) / 2


def test_cart_adds_without_purchase_and_rfm():
    user = UserFeatures()
    feed(
        user,
        click(kind="add_to_cart", ts=T0, value=10.0),
        click(kind="add_to_cart", ts=T0 + MIN, value=15.0),
        click(kind="purchase", ts=T0 + 2 * MIN, value=25.0),
        click(kind="add_to_cart", ts=T0 + 3 * MIN, value=5.0),  # never bought
        click(kind="page_view", ts=T0 + 2 * HOUR),  # next session: the open cart was abandoned
        click(kind="add_to_cart", ts=T0 + 2 * HOUR + MIN),  # still open
    )
    snap = user.snapshot(T0 + 2 * DAY + 2 * MIN, CFG)
    assert snap["cart_adds"] == 4 and snap["purchases"] == 1
    assert snap["cart_adds_without_purchase"] == 2
    assert (snap["frequency"], snap["monetary"]) == (1, 25.0)
    assert snap["recency_days"] == 2.0
    assert snap["cart_abandon_rate"] == 0.5


def test_no_purchase_means_unknown_recency():
    user = UserFeatures()
    feed(user, click())
    assert user.snapshot(T0, CFG)["recency_days"] is None


def test_context_means_ignore_events_without_the_field():
    user = UserFeatures()
    feed(
        user,
        click(ts=T0, device="mobile", scroll_depth=0.2, dwell_ms=1000),
        click(ts=T0 + 1, device="desktop", scroll_depth=0.6),
        click(ts=T0 + 2),
    )
    snap = user.snapshot(T0 + 2, CFG)
    assert (snap["mobile_share"], snap["mean_scroll_depth"], snap["mean_dwell_s"]) == (0.5, 0.4, 1.0)


def test_traits_numeric_kept_categorical_one_hot():
    user = UserFeatures()
    feed(user, click(kind="identify", traits={"age": 31, "country": "DE"}))
    feed(user, click(kind="identify", ts=T0 + 1, traits={"country": "Narnia"}))
    snap = user.snapshot(T0 + 1, CFG)
    assert snap["trait_age"] == 31.0
    assert snap["trait_country=DE"] == 0.0 and snap["trait_country=other"] == 1.0


def test_duplicate_event_ids_are_ignored_within_the_horizon():
    user = UserFeatures()
    assert feed(user, click(ts=T0, event_id="e1"), click(ts=T0 + 1, event_id="e1")) == [OK, DUPLICATE]
    # Beyond the horizon (1 h of the user's event time) the id is forgotten.
    feed(user, click(ts=T0 + 2 * HOUR, event_id="e2"))
    assert feed(user, click(ts=T0 + 2 * HOUR + 1, event_id="e1")) == [OK]


def test_events_without_id_are_deduplicated_by_content():
    user = UserFeatures()
    event = click(kind="purchase", ts=T0, value=9.0, page="/checkout")
    assert feed(user, event, event) == [OK, DUPLICATE]
    assert user.snapshot(T0, CFG)["monetary"] == 9.0


def test_record_round_trip():
    user = UserFeatures()
    feed(user, click(kind="identify", traits={"age": 40}), click(kind="purchase", ts=T0 + 5, value=3.0))
    again = UserFeatures.from_record(orjson.loads(orjson.dumps(user.to_record())))
    assert again.snapshot(T0 + 5, CFG) == user.snapshot(T0 + 5, CFG)
    assert again.to_record() == user.to_record()


def test_schema_one_records_still_read():
    """State written before window buckets were stored as pairs (flat lists) decodes the same."""
    user = UserFeatures()
    feed(user, click(kind="search", ts=T0, event_id="a"), click(kind="purchase", ts=T0 + 400, value=3.0))
    *scalars, windows, recent, traits = user.to_record()
    flat_windows = {name: [x for pair in pairs for x in pair] for name, pairs in windows.items()}
    old = UserFeatures.from_record(orjson.loads(orjson.dumps([*scalars, flat_windows, recent, traits])))
    assert old.to_record() == UserFeatures.from_record(orjson.loads(orjson.dumps(user.to_record()))).to_record()
    assert feed(old, click(kind="search", ts=T0 + 500, event_id="a")) == [DUPLICATE]


kinds = st.sampled_from(["page_view", "product_view", "search", "add_to_cart", "purchase", "identify", "x"])
streams = st.lists(
    st.tuples(kinds, st.floats(min_value=0, max_value=30 * DAY), st.floats(min_value=0, max_value=1e6)),
    min_size=1,
    max_size=400,
)


@settings(max_examples=60, deadline=None)
@given(streams)
def test_state_stays_under_two_kilobytes_whatever_the_stream(stream):
    user = UserFeatures()
    traits = {f"t{i}": "x" * 20 for i in range(40)}
    for kind, offset, value in sorted(stream, key=lambda item: item[1]):
        user.apply(
            click(kind=kind, ts=T0 + offset, value=value, event_id=f"id-{offset}", device="mobile",
                  scroll_depth=0.5, dwell_ms=value, traits=traits, category=f"category-{offset}"),
            CFG,
        )  # fmt: skip
    size = len(orjson.dumps(user.to_record()))
    assert size <= 2_048, size
    assert sum(len(b) for b in user.windows.values()) <= sum(s // w + 1 for s, w in CFG.windows.values())


@settings(max_examples=60, deadline=None)
@given(streams, st.randoms(use_true_random=False))
def test_window_counts_stay_exact_and_bounded_with_late_events(stream, rnd):
    """Late events open buckets behind newer ones; counts stay exact and buckets bounded."""
    user = UserFeatures()
    ordered = sorted(offset for _, offset, _ in stream)
    jittered = [offset + rnd.uniform(0, CFG.allowed_lateness_s) for offset in ordered]
    for i, offset in enumerate(jittered):
        assert user.apply(click(kind="search", ts=T0 + offset, event_id=f"e{i}"), CFG) == OK
    for name, buckets in user.windows.items():
        span, width = CFG.windows[name]
        assert len(buckets) <= span // width + 1
    # Jitter within the allowed lateness: no event is late, so every window counts exactly.
    last = T0 + max(jittered)
    for name, (span, width) in CFG.windows.items():
        in_window = range(int((last - span) // width), int(last // width) + 1)
        expected = sum(1 for offset in jittered if int((T0 + offset) // width) in in_window)
        assert user.window_count(name, last, CFG.windows) == expected


@settings(max_examples=60, deadline=None)
@given(streams)
def test_order_within_lateness_does_not_change_lifetime_counts(stream):
    """Shuffling events by less than the allowed lateness gives the same lifetime counters."""
    ordered = [(kind, offset, i) for i, (kind, offset, _) in enumerate(sorted(stream, key=lambda item: item[1]))]
    a, b = UserFeatures(), UserFeatures()
    for kind, offset, i in ordered:
        a.apply(click(kind=kind, ts=T0 + offset, event_id=str(i)), CFG)
    swapped = list(ordered)
    for i in range(0, len(swapped) - 1, 2):
        if swapped[i + 1][1] - swapped[i][1] < 60:
            swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    for kind, offset, i in swapped:
        b.apply(click(kind=kind, ts=T0 + offset, event_id=str(i)), CFG)
    for name in ("events", "purchases", "cart_adds", "product_views", "searches", "late"):
        assert getattr(a, name) == getattr(b, name)
