"""One feature catalogue: the model, the rules, the published features and the README agree."""

from __future__ import annotations

import math
import re
from pathlib import Path

import orjson
import pytest

from app.core.engine.embedded import EmbeddedPipeline
from app.core.engine.process import EngineConfig
from app.core.events.decode import ClickEvent, decode_message
from app.core.features import MODEL_FEATURES, FeatureConfig, UserFeatures, catalogue
from app.core.features import MAX_CATEGORIES, MAX_GAPS
from app.core.rules.rulebook import Rulebook, RulesConfig, known_names
from app.core.segments.learner import LearnerConfig
from app.core.segments.segmenter import SegmenterConfig, vector_reader
from app.core.state.user import UserState
from app.simulator import Scenario, generate
from tests.conftest import T0, click

CFG = FeatureConfig()
README = Path(__file__).resolve().parents[2] / "README.md"
MIN, HOUR, DAY = 60.0, 3_600.0, 86_400.0


@pytest.fixture(scope="module")
def users() -> list[UserFeatures]:
    states: dict[str, UserFeatures] = {}
    for message in generate(Scenario(users=150, events=6_000, seed=9)):
        for event in decode_message(message.to_bytes(), now=2e9).events:
            states.setdefault(event.user_id, UserFeatures()).apply(event, CFG)
    return list(states.values())


def test_every_consumer_reads_the_catalogue_names():
    names = catalogue(CFG).names
    published = UserFeatures().snapshot(T0, CFG)
    assert list(published) == list(names)
    assert set(MODEL_FEATURES) <= set(names)
    assert set(SegmenterConfig().features) <= set(published), "a model input missing from the published features"
    assert {name for name in names if "=" not in name} <= set(known_names(CFG)), "a feature rules cannot name"


def test_rules_and_model_read_the_published_values(users):
    rule_names = [name for name in catalogue(CFG).names if "=" not in name]
    book = Rulebook(RulesConfig(segments={f"s{i}": f"{name} != null" for i, name in enumerate(rule_names)}), CFG)
    plain = [column for column in book.columns if column in rule_names]
    vector = vector_reader(MODEL_FEATURES, CFG)
    event = ClickEvent("u", "search", T0)
    for user in users:
        snapshot = user.snapshot(user.last_ts, CFG)
        row = book.read(UserState(features=user), event, None)
        for name, value in [*zip(plain, row), *zip(MODEL_FEATURES, vector(user))]:
            expected = snapshot[name]
            if expected is None:
                assert math.isnan(value), name
            else:
                assert value == pytest.approx(expected, abs=0.01, rel=1e-3), name


def test_published_changes_carry_every_model_input():
    config = EngineConfig(segmenter=SegmenterConfig(sample_rate=1.0), learner=LearnerConfig(warmup=200, publish_every=200))
    pipeline = EmbeddedPipeline(config)
    messages = [m.to_bytes() for m in generate(Scenario(users=80, events=6_000, seed=3))]
    changes = []
    for start in range(0, len(messages), 500):
        changes += pipeline.feed(messages[start : start + 500], now=2e9).changes
    cluster = [change for change in changes if change["kind"] == "cluster"]
    assert cluster, "no cluster change to check"
    for change in cluster:
        assert set(pipeline.engine.model.features) <= set(change["features"])
        assert list(change["features"]) == list(catalogue(pipeline.config.features).names)


def test_readme_feature_table_is_the_catalogue():
    text = README.read_text()
    table = catalogue(CFG).markdown()
    assert table in text, "README's feature table differs from catalogue(FeatureConfig()).markdown()"


def test_funnel_ratios_count_sessions_not_events():
    user = UserFeatures()
    day = [("product_view", 0), ("product_view", 1), ("add_to_cart", 2), ("checkout", 3), ("purchase", 4)]
    for session in range(3):  # three sessions a day apart: the first converts, the others only view
        steps = day if session == 0 else day[:2]
        for kind, minute in steps:
            assert user.apply(click(kind=kind, ts=T0 + session * DAY + minute * MIN, value=10.0), CFG) == "ok"
    snap = user.snapshot(user.last_ts, CFG)
    assert snap["view_to_cart"] == round(1 / 3, 4)
    assert snap["cart_to_purchase"] == snap["checkout_to_purchase"] == 1.0
    assert snap["sessions_per_active_day"] == 1.0 and snap["active_days"] == 3
    assert snap["median_session_gap_h"] == pytest.approx(((DAY - 4 * MIN) + (DAY - MIN)) / 2 / HOUR, abs=1e-3)
    assert snap["tenure_days"] == pytest.approx((2 * DAY + MIN) / DAY, abs=1e-3)


def test_order_values_basket_and_categories():
    user = UserFeatures()
    events = [
        click(kind="add_to_cart", ts=T0, category="shoes"), click(kind="add_to_cart", ts=T0 + 1, category="hats"),
        click(kind="purchase", ts=T0 + 2, value=10.0), click(kind="purchase", ts=T0 + DAY, value=30.0),
    ]  # fmt: skip
    for event in events:
        user.apply(event, CFG)
    snap = user.snapshot(user.last_ts, CFG)
    assert (snap["avg_order_value"], snap["order_value_std"]) == (20.0, 10.0)
    assert snap["basket_size"] == 1.5  # two items, then a purchase without cart adds
    assert snap["category_breadth"] == 2


def test_time_of_day_weekday_and_device_mix_in_the_users_zone():
    cfg = FeatureConfig(default_timezone="America/New_York")
    user = UserFeatures()
    # 2026-01-03 is a Saturday; 02:00 UTC there is 21:00 on Friday in New York.
    saturday_0200_utc = 1_767_405_600.0
    for i, device in enumerate(("mobile", "mobile", "desktop", "tablet")):
        user.apply(click(ts=saturday_0200_utc + i * MIN, device=device), cfg)
    snap = user.snapshot(user.last_ts, cfg)
    assert snap["peak_hour"] == pytest.approx(21.125, abs=0.01)  # the middle of the 21:00 quarter hour
    assert snap["hour_spread"] == pytest.approx(0.0, abs=1e-3)
    assert snap["weekend_share"] == 0.0  # Friday evening locally
    assert (snap["mobile_share"], snap["desktop_share"], snap["tablet_share"]) == (0.5, 0.25, 0.25)
    tokyo = UserFeatures()
    tokyo.apply(click(kind="identify", ts=saturday_0200_utc, traits={"timezone": "Asia/Tokyo"}), cfg)
    tokyo.apply(click(ts=saturday_0200_utc + MIN), cfg)  # 11:01 on Saturday in Tokyo
    assert tokyo.snapshot(tokyo.last_ts, cfg)["weekend_share"] == 0.5


def test_the_engine_takes_local_time_from_the_rules_default_zone():
    config = EngineConfig(rules=RulesConfig(default_timezone="Asia/Kolkata"))
    assert config.features.default_timezone == "Asia/Kolkata"


def test_schema_four_records_still_read():
    """A state written before cadence, funnel and local time decodes with those at zero."""
    user = UserFeatures()
    user.apply(click(kind="purchase", ts=T0, value=3.0), CFG)
    record = user.to_record()
    old_scalars = record[: -5 - (len(record) - 5 - _v4_scalar_count())]
    old = [*old_scalars, *record[-5:-2]]
    decoded = UserFeatures.from_record(orjson.loads(orjson.dumps(old)))
    assert (decoded.purchases, decoded.monetary, decoded.active_days, decoded.gaps) == (1, 3.0, 0, [])


def _v4_scalar_count() -> int:
    from app.core.features import user as module

    return len(module._SCALARS_V4)


def test_new_state_is_bounded():
    user = UserFeatures()
    for i in range(200):
        user.apply(click(kind="purchase", ts=T0 + i * DAY, value=1.0, category=f"c{i}"), CFG)
    assert len(user.gaps) == MAX_GAPS and len(user.categories) == MAX_CATEGORIES
    assert re.fullmatch(r"\d+", str(user.snapshot(user.last_ts, CFG)["category_breadth"]))
