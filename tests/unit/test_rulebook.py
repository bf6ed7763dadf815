"""What rules read: local time in the user's zone, and names checked against what is known."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from app.core.events.decode import ClickEvent
from app.core.features import WEEKDAYS, FeatureConfig, local_time
from app.core.rules.language import RuleError
from app.core.rules.rulebook import Rulebook, RulesConfig
from app.core.state.user import UserState


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "Asia/Kolkata", "America/St_Johns", "Asia/Kathmandu"])
def test_local_hour_and_weekday_match_the_time_zone(zone):
    for ts in range(1_767_225_600, 1_767_225_600 + 14 * 86_400, 7_919):  # two weeks, odd steps
        local = datetime.fromtimestamp(ts, ZoneInfo(zone))
        there = local_time(float(ts), zone, "UTC")
        assert (there.hour, there.weekday, there.day) == (local.hour, local.weekday(), local.toordinal())


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


def test_rfm_tiers_cover_every_score_exactly_once():
    """Every buyer with scores is in exactly one RFM tier, whatever the scores."""
    from itertools import product

    import numpy as np

    from app.core.rules.evaluate import compile_rule
    from app.core.rules.language import parse
    from app.core.rules.rulebook import RFM_SEGMENTS

    grid = np.array(list(product(range(1, 6), repeat=3)), dtype=float)
    columns = {"r_score": grid[:, 0], "f_score": grid[:, 1], "m_score": grid[:, 2]}
    types = dict.fromkeys(columns, "number")
    hits = sum(compile_rule(parse(rule), types)(columns).astype(int) for rule in RFM_SEGMENTS.values())
    assert hits.tolist() == [1] * len(grid)
