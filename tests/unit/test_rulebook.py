"""What rules read: the same feature values as the published snapshot, and local time."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from app.core.events import ClickEvent, decode_message
from app.core.features import FeatureConfig
from app.core.rulebook import _PLAIN_FEATURES, WEEKDAYS, Rulebook, RulesConfig, _local, _scalar_features
from app.core.rules import RuleError
from app.core.simulator import Scenario, generate
from app.core.state import UserState


@pytest.fixture(scope="module")
def users() -> list[UserState]:
    cfg = FeatureConfig()
    states: dict[str, UserState] = {}
    for message in generate(Scenario(users=150, events=6_000, seed=9)):
        for event in decode_message(message.to_bytes(), now=2e9).events:
            states.setdefault(event.user_id, UserState()).features.apply(event, cfg)
    return list(states.values())


def test_rules_read_the_same_features_as_the_snapshot(users):
    for state in users:
        user = state.features
        snapshot = user.snapshot(user.last_ts, FeatureConfig())
        for name, value in zip(_PLAIN_FEATURES, _scalar_features(user), strict=True):
            expected = snapshot[name]
            if expected is None:
                assert math.isnan(value), name
            else:
                assert value == pytest.approx(expected, abs=0.01, rel=1e-3), name


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "Asia/Kolkata", "America/St_Johns", "Asia/Kathmandu"])
def test_local_hour_and_weekday_match_the_time_zone(zone):
    for ts in range(1_767_225_600, 1_767_225_600 + 14 * 86_400, 7_919):  # two weeks, odd steps
        local = datetime.fromtimestamp(ts, ZoneInfo(zone))
        assert _local(float(ts), zone, "UTC") == (local.hour, local.weekday())


def test_time_zone_from_traits_and_default():
    book = Rulebook(RulesConfig(segments={"paris_evening": "local_hour >= 20 and weekday == 'thu'"},
                                default_timezone="Europe/Paris"), FeatureConfig())  # fmt: skip
    ts = datetime(2026, 1, 1, 19, 30, tzinfo=ZoneInfo("UTC")).timestamp()  # a Thursday, 20:30 in Paris
    paris, tokyo = UserState(), UserState()
    tokyo.features.traits["timezone"] = "Asia/Tokyo"  # 04:30 on Friday there
    event = ClickEvent("u", "search", ts)
    assert book.evaluate([book.read(paris, event, None), book.read(tokyo, event, None)])["paris_evening"].tolist() == [True, False]
    assert WEEKDAYS[3] == "thu"


def test_unknown_names_are_reported_with_what_is_known():
    with pytest.raises(RuleError, match="unknown name 'spend'.*monetary"):
        Rulebook(RulesConfig(segments={"x": "spend > 3"}), FeatureConfig())
