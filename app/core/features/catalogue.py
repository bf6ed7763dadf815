"""The feature catalogue: every per-user feature, defined once.

A :class:`Feature` is a name, a type, an expression over the per-user state
(:class:`~app.core.features.user.UserFeatures` as ``u``, and ``now``, the event
time it is read at) and a one-line meaning. Everything that reads features reads
them from here: the model's vectors, the rules, the ``features`` published on
segment changes and profiles, the dashboard and the README's feature table.

The expressions of the features a reader needs are compiled into one function,
so a reader costs what the hand-written arithmetic would, and a feature cannot
mean one thing to the model and another to a rule.

>>> from app.core.events.decode import ClickEvent
>>> from app.core.features import FeatureConfig, UserFeatures
>>> cfg = FeatureConfig()
>>> user = UserFeatures()
>>> for ts, kind in ((0, "product_view"), (60, "add_to_cart"), (120, "purchase"), (90_000, "product_view")):
...     _ = user.apply(ClickEvent("u1", kind, 1_767_225_600.0 + ts, value=20.0), cfg)
>>> cat = catalogue(cfg)
>>> read = cat.reader(("view_to_cart", "cart_to_purchase", "sessions_per_active_day", "median_session_gap_h"))
>>> [round(v, 3) for v in read(user, user.last_ts)]
[0.5, 1.0, 1.0, 24.967]
>>> cat.snapshot(user, user.last_ts)["basket_size"], cat["view_to_cart"].meaning
(1.0, 'share of sessions with a product view that also added to the cart')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.features.config import FeatureConfig
from app.core.features.user import UserFeatures

INTEGER, NUMBER = "integer", "number"  # JSON Schema types of a feature's value


@dataclass(frozen=True)
class Feature:
    """One per-user feature. ``expr`` is Python over ``u`` (the state) and ``now`` (event time)."""

    name: str
    type: str  # INTEGER or NUMBER; NaN in ``expr`` (None when published) means unobserved
    expr: str
    meaning: str
    digits: int | None = 4  # published rounded to this many digits (None: as is)
    model: bool = False  # a default input of the cluster model

    @property
    def nullable(self) -> bool:
        """Whether the value can be unobserved (NaN, published as null)."""
        return self.type == NUMBER and any(word in self.expr for word in ("nan", "_number(", "_peak_hour("))


def _f(name: str, expr: str, meaning: str, *, digits: int | None = 4, model: bool = False, integer: bool = False):
    return Feature(name, INTEGER if integer else NUMBER, expr, meaning, None if integer else digits, model)


_PER_SESSION = "(u.sessions or 1)"
_UNPURCHASED = "(u.cart_abandoned + u.cart_open)"

# The fixed features, in published order. Windowed counts and traits follow them (``catalogue``).
FEATURES: tuple[Feature, ...] = (
    _f("events", "u.events", "valid events folded in", integer=True),
    _f("sessions", "u.sessions", "sessions; one ends after session_gap_s (30 min) without events", integer=True),
    _f("mean_session_s", "(u.closed_session_s + u.session_end - u.session_start) / u.sessions if u.sessions else 0.0",
       "mean session length in seconds", digits=3, model=True),
    _f("active_days", "u.active_days", "local calendar days with at least one event", integer=True),
    _f("sessions_per_active_day", "u.sessions / u.active_days if u.active_days else nan",
       "sessions per active day", digits=3, model=True),
    _f("median_session_gap_h", "_median(u.gaps) / 3600.0 if u.gaps else nan",
       "median time between the last 8 sessions, in hours", digits=3, model=True),
    _f("tenure_days", "(u.last_ts - u.first_ts) / 86400.0 if u.events else 0.0",
       "days from the first to the latest event", digits=3),
    _f("product_views", "u.product_views", "product views", integer=True),
    _f("cart_adds", "u.cart_adds", "cart adds", integer=True),
    _f("purchases", "u.purchases", "purchases", integer=True),
    _f("cart_adds_without_purchase", _UNPURCHASED,
       "cart adds not followed by a purchase in their session (abandoned or still open)", integer=True),
    _f("recency_days", "max(0.0, now - u.last_purchase_ts) / 86400.0 if u.last_purchase_ts is not None else nan",
       "days since the last purchase; unobserved before one"),
    _f("frequency", "u.purchases", "number of purchases (RFM)", integer=True),
    _f("monetary", "u.monetary", "total purchase value (RFM)", digits=2),
    _f("avg_order_value", "u.monetary / u.purchases if u.purchases else nan",
       "mean purchase value; unobserved before a purchase", digits=2, model=True),
    _f("order_value_std", "_spread(u.value_sq, u.monetary, u.purchases) if u.purchases > 1 else nan",
       "standard deviation of purchase values; unobserved before a second purchase", digits=2, model=True),
    _f("basket_size", "u.basket_items / u.purchases if u.purchases else nan",
       "cart items per purchase (a purchase without cart adds counts 1)", digits=3, model=True),
    _f("category_breadth", "len(u.categories)", "distinct categories seen (saturates at 16)", integer=True,
       model=False),
    _f("conversion", f"u.purchases / {_PER_SESSION}", "purchases per session", model=True),
    _f("cart_abandon_rate", f"{_UNPURCHASED} / u.cart_adds if u.cart_adds else 0.0",
       "share of cart adds without a purchase"),
    _f("views_per_session", f"u.product_views / {_PER_SESSION}", "product views per session", digits=3, model=True),
    _f("cart_adds_per_session", f"u.cart_adds / {_PER_SESSION}", "cart adds per session", digits=3, model=True),
    _f("abandoned_per_session", f"{_UNPURCHASED} / {_PER_SESSION}", "cart adds without purchase per session",
       model=True),
    _f("search_share", "u.searches / u.events if u.events else 0.0", "share of events that are searches",
       model=True),
    _f("view_to_cart", "u.view_cart / u.with_view if u.with_view else nan",
       "share of sessions with a product view that also added to the cart", model=True),
    _f("cart_to_purchase", "u.cart_purchase / u.with_cart if u.with_cart else nan",
       "share of sessions with a cart add that also purchased", model=True),
    _f("checkout_to_purchase", "u.checkout_purchase / u.with_checkout if u.with_checkout else nan",
       "share of sessions with a checkout that also purchased", model=True),
    _f("peak_hour", "_peak_hour(u.hour_x, u.hour_y)",
       "circular mean of the local hour of events, 0 to 24; unobserved when spread evenly", digits=2),
    _f("hour_cos", "u.hour_x / (1000.0 * u.events) if u.events else nan",
       "mean cosine of the local hour on the 24 h circle (1 near midnight, -1 near noon)", model=True),
    _f("hour_sin", "u.hour_y / (1000.0 * u.events) if u.events else nan",
       "mean sine of the local hour on the 24 h circle (1 near 06:00, -1 near 18:00)", model=True),
    _f("hour_spread", "1.0 - _hypot(u.hour_x, u.hour_y) / (1000.0 * u.events) if u.events else nan",
       "circular variance of the local hour: 0 always at one hour, 1 spread over the day"),
    _f("weekend_share", "u.weekend_events / u.events if u.events else nan",
       "share of events on a local Saturday or Sunday", model=True),
    _f("mobile_share", "u.mobile_events / u.device_events if u.device_events else nan",
       "share of events from mobile, over the events that name a device", model=True),
    _f("desktop_share", "u.desktop_events / u.device_events if u.device_events else nan",
       "share of events from desktop, over the events that name a device", model=True),
    _f("tablet_share", "u.tablet_events / u.device_events if u.device_events else nan",
       "share of events from tablets, over the events that name a device"),
    _f("mean_scroll_depth", "u.scroll_sum / u.scroll_n if u.scroll_n else nan",
       "mean scroll depth, over the events that carry one", model=True),
    _f("mean_dwell_s", "u.dwell_sum / u.dwell_n / 1000.0 if u.dwell_n else nan",
       "mean dwell in seconds, over the events that carry one", digits=3, model=True),
    _f("late_events", "u.late", "events dropped as later than allowed_lateness_s", integer=True),
    _f("duplicate_events", "u.duplicates", "events dropped as duplicates", integer=True),
)  # fmt: skip

MODEL_FEATURES = tuple(feature.name for feature in FEATURES if feature.model)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return float(ordered[middle]) if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0


def _spread(squares: float, total: float, n: int) -> float:
    mean = total / n
    return math.sqrt(max(0.0, squares / n - mean * mean))


def _peak_hour(x: int, y: int) -> float:
    if x == 0 and y == 0:
        return math.nan
    return (math.atan2(y, x) / (2 * math.pi) * 24.0) % 24.0


def _number(value: Any) -> float:
    return float(value) if type(value) in (int, float) and math.isfinite(value) else math.nan


def _other(value: Any, vocabulary: tuple[str, ...]) -> float:
    return 1.0 if value is not None and value not in vocabulary else 0.0


_NAMESPACE = {
    "nan": math.nan, "_median": _median, "_spread": _spread, "_peak_hour": _peak_hour, "_hypot": math.hypot,
    "_number": _number, "_other": _other,
}  # fmt: skip


class Catalogue:
    """The features of one :class:`FeatureConfig`: the fixed ones, its windows and its traits."""

    def __init__(self, cfg: FeatureConfig) -> None:
        windows = [
            _f(f"activity_{name}", f"u.window_count({name!r}, now, _windows)",
               f"events in the last {name} (buckets of {width} s; the oldest bucket counts whole)", integer=True)
            for name, (_, width) in cfg.windows.items()
        ]  # fmt: skip
        traits = [_f(f"trait_{name}", f"_number(u.traits.get({name!r}))", f"trait {name!r} as a number", digits=None)
                  for name in cfg.numeric_traits]  # fmt: skip
        for name, vocabulary in cfg.categorical_traits.items():
            traits += [_f(f"trait_{name}={option}", f"(1.0 if u.traits.get({name!r}) == {option!r} else 0.0)",
                          f"1 if trait {name!r} is {option!r}", digits=None) for option in vocabulary]  # fmt: skip
            traits.append(_f(f"trait_{name}=other", f"_other(u.traits.get({name!r}), {tuple(vocabulary)!r})",
                             f"1 if trait {name!r} is set to a value outside its vocabulary", digits=None))
        self.features: tuple[Feature, ...] = (*windows, *FEATURES, *traits)
        self._by_name = {feature.name: feature for feature in self.features}
        self._namespace = {**_NAMESPACE, "_windows": dict(cfg.windows)}
        self.snapshot: Callable[[UserFeatures, float], dict[str, Any]] = self._compile(
            "{" + ", ".join(f"{f.name!r}: {_published(f)}" for f in self.features) + "}"
        )

    def __getitem__(self, name: str) -> Feature:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def reader(self, names: Sequence[str]) -> Callable[[UserFeatures, float], tuple[float, ...]]:
        """One compiled function giving ``names`` as floats (NaN = unobserved) as of ``now``."""
        unknown = [name for name in names if name not in self._by_name]
        if unknown:
            raise ValueError(f"unknown features {unknown}; the catalogue has {sorted(self._by_name)}")
        return self._compile("(" + "".join(f"float({self._by_name[n].expr}), " for n in names) + ")")

    def vector_reader(self, names: Sequence[str]) -> Callable[[UserFeatures], list[float]]:
        """The model's raw vector of ``names`` for a user, as of the user's latest event."""
        read = self.reader(names)
        return lambda user: list(read(user, user.last_ts))

    def markdown(self) -> str:
        """The README's feature table."""
        rows = ["| feature | type | model input | meaning |", "|---|---|---|---|"]
        rows += [f"| `{f.name}` | {f.type} | {'yes' if f.model else ''} | {f.meaning} |" for f in self.features]
        return "\n".join(rows)

    def _compile(self, body: str) -> Callable:
        return eval(f"lambda u, now: {body}", dict(self._namespace))  # our own expressions, never input


def _published(feature: Feature) -> str:
    """The feature's published value as an expression: rounded, and None for NaN (JSON null)."""
    if feature.type == INTEGER:
        return feature.expr
    digits = 12 if feature.digits is None else feature.digits
    if not feature.nullable:
        return f"round({feature.expr}, {digits})"
    return f"(None if (_v := {feature.expr}) != _v else round(_v, {digits}))"


def catalogue(cfg: FeatureConfig) -> Catalogue:
    """The catalogue of ``cfg``, built once per config object."""
    built = cfg.__dict__.get("_catalogue")
    if built is None:
        built = Catalogue(cfg)
        object.__setattr__(cfg, "_catalogue", built)
    return built
