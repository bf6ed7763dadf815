"""Rule segments and trigger conditions: configured, compiled once, evaluated per batch.

The rulebook reads, at each decision point (a user's last event in a message),
one row of the values its rules name, and evaluates every rule over all rows of
a batch at once with numpy (:mod:`app.core.rules.language`).

Names a rule can read:

- every feature of the catalogue by its name (``monetary``, ``recency_days``,
  ``activity_1h``, ``view_to_cart``, ``trait_age``, ...; :mod:`app.core.features.catalogue`),
  as of the user's latest event;
- ``r_score``, ``f_score``, ``m_score``: RFM scores 1 to 5 (:mod:`app.core.segments.rfm`);
- ``trait.<name>``: a trait as sent (a number if listed in
  ``features.numeric_traits``, else text);
- ``device`` and ``event``: the device and type of the user's latest event;
- ``local_hour`` (0 to 23) and ``weekday`` (``mon`` ... ``sun``) of that event, in
  the user's time zone (trait ``timezone``, an IANA name) or ``default_timezone``;
- ``count(<event type>, <duration>)``: events of that type in the window; the
  user state keeps one bucketed counter per window the rules name.

>>> from app.core.events.decode import ClickEvent
>>> from app.core.state.user import UserState
>>> book = Rulebook(RulesConfig(segments={"mobile_buyer": "device == 'mobile' and purchases >= 1"}),
...                 FeatureConfig())
>>> state = UserState()
>>> event = ClickEvent("u1", "purchase", 1_767_225_600.0, value=5.0, device="mobile")
>>> state.features.apply(event, FeatureConfig())
'ok'
>>> rows = [book.read(state, event, None)]
>>> book.evaluate(rows)["mobile_buyer"].tolist()
[True]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Callable

import numpy as np

from app.core.events.decode import ClickEvent
from app.core.features import WEEKDAYS, FeatureConfig, UserFeatures, catalogue, local_time, typed_window
from app.core.rules.evaluate import compile_rule
from app.core.rules.language import NUMBER, TEXT, Node, RuleError, counts_in, names_in, parse
from app.core.segments.rfm import Edges, rfm_scores
from app.core.state.user import UserState

# The classic RFM segments, on by default (users can replace or drop them). Together they
# cover every (R, F, M) score and never overlap, so every buyer with scores has one tier.
RFM_SEGMENTS: dict[str, str] = {
    "champions": "r_score >= 4 and f_score >= 4 and m_score >= 4",
    "loyal": "f_score >= 4 and r_score >= 3 and not (r_score >= 4 and m_score >= 4)",
    "potential_loyalists": "r_score >= 3 and f_score between 2 and 3",
    "new_customers": "r_score >= 4 and f_score == 1",
    "about_to_sleep": "r_score == 3 and f_score == 1",
    "at_risk": "r_score <= 2 and f_score >= 3",
    "hibernating": "r_score <= 2 and f_score <= 2",
}


@dataclass(frozen=True)
class CustomTrigger:
    """A trigger declared in the config: ``when`` becomes true, optionally not followed by ``unless``.

    Without ``unless`` it fires when ``when`` becomes true. With it, it fires once
    ``within_s`` of event time pass after that with no ``unless`` event.
    """

    name: str
    when: str
    unless: str | None = None  # an event type
    within_s: float = 0.0

    def __post_init__(self) -> None:
        if (self.unless is None) != (self.within_s <= 0):
            raise ValueError(f"trigger {self.name!r}: 'unless' and 'within' go together")


@dataclass(frozen=True)
class TriggerConfig:
    """The built-in triggers (0 turns one off) and the custom ones."""

    cart_abandon_s: float = 1_800.0  # fires this long after the latest add_to_cart without a purchase
    cart_max_items: int = 10
    hot_lead_views: int = 5  # product views ...
    hot_lead_window_s: int = 300  # ... within this window
    win_back_days: float = 60.0  # fires when recency_days crosses this
    custom: tuple[CustomTrigger, ...] = ()

    def names(self) -> list[str]:
        """Every trigger that can fire, built-in ones first.

        >>> TriggerConfig(hot_lead_views=0, custom=(CustomTrigger("stalled", "event == 'checkout'"),)).names()
        ['cart_abandon', 'win_back', 'stalled']
        """
        built_in = {"cart_abandon": self.cart_abandon_s, "hot_lead": self.hot_lead_views, "win_back": self.win_back_days}
        return [name for name, on in built_in.items() if on] + [custom.name for custom in self.custom]


@dataclass(frozen=True)
class RulesConfig:
    """Rule segments by name, triggers, and the default time zone for local time."""

    segments: Mapping[str, str] = field(default_factory=lambda: dict(RFM_SEGMENTS))
    triggers: TriggerConfig = field(default_factory=TriggerConfig)
    default_timezone: str = "UTC"


@dataclass(frozen=True)
class EdgeCondition:
    """A trigger condition evaluated with the rules: fires on its rising edge."""

    name: str
    rule: str
    unless: str | None = None
    within_s: float = 0.0


class Rulebook:
    """Compiled rule segments and trigger conditions, with the reader of their inputs."""

    def __init__(self, config: RulesConfig, features: FeatureConfig) -> None:
        self.config = config
        self.features = features
        self.conditions = self._conditions(config.triggers)
        parsed: dict[str, tuple[Node, str]] = {}
        for name, text in config.segments.items():
            parsed[f"segment:{name}"] = (parse(text, name=name), text)
        for condition in self.conditions:
            parsed[f"trigger:{condition.name}"] = (parse(condition.rule, name=condition.name), condition.rule)
        used = set().union(*(names_in(node) for node, _ in parsed.values())) if parsed else set()
        self.counted = tuple(sorted(set().union(*(counts_in(node) for node, _ in parsed.values())) if parsed else ()))
        types = {name: _type_of(name, features, self.counted) for name in sorted(used)}
        # Plain features first, then counts: one call computes each group.
        features_of = catalogue(features)
        plain = [name for name in types if name in features_of]
        counts = [name for name in types if name.startswith("count(")]
        scored = [name for name in _SCORES if name in types]
        rest = [name for name in types if name not in features_of and name not in counts and name not in scored]
        self.columns = tuple(plain + counts + scored + rest)
        self._evaluators = {
            key: compile_rule(node, types, name=key.split(":", 1)[1], text=text) for key, (node, text) in parsed.items()
        }
        self._plain = features_of.reader(plain) if plain else None
        self._counts = _count_reader(counts)
        self._readers = [_reader(name, features, config.default_timezone) for name in rest]
        self._scored = _picker([_SCORES.index(name) for name in scored])
        self._dtypes = [float if types[name] == NUMBER else object for name in self.columns]
        self.segment_names = tuple(config.segments)
        # Each rule segment's inputs: (name, column index), published with its changes.
        position = {name: i for i, name in enumerate(self.columns)}
        self._inputs = {}
        for name in self.segment_names:
            read = sorted(names_in(parsed[f"segment:{name}"][0]))
            self._inputs[name] = (tuple(read), _picker([position[column] for column in read]))

    @staticmethod
    def _conditions(triggers: TriggerConfig) -> tuple[EdgeCondition, ...]:
        conditions = []
        if triggers.hot_lead_views > 0:
            window = f"{int(triggers.hot_lead_window_s)}s"
            conditions.append(EdgeCondition("hot_lead", f"count(product_view, {window}) >= {triggers.hot_lead_views}"))
        for custom in triggers.custom:
            if custom.name in ("cart_abandon", "hot_lead", "win_back"):
                raise RuleError(f"trigger name {custom.name!r} is built in", name=custom.name)
            conditions.append(EdgeCondition(custom.name, custom.when, custom.unless, custom.within_s))
        return tuple(conditions)

    @property
    def empty(self) -> bool:
        return not self._evaluators

    def read(self, state: UserState, event: ClickEvent, edges: Edges | None) -> tuple:
        """One row: the value of every column for ``state`` as of ``event``."""
        plain = self._plain(state.features, state.features.last_ts) if self._plain else ()
        counts = self._counts(state.features) if self._counts else ()
        scores = self._scored(_scores(state.features, edges)) if self._scored else ()
        return (*plain, *counts, *scores, *[read(state, event) for read in self._readers])

    def evidence(self, segment: str, row: tuple) -> dict[str, Any]:
        """The values ``segment``'s rule read in ``row``, by name (NaN for missing: JSON null)."""
        names, pick = self._inputs[segment]
        return dict(zip(names, pick(row))) if pick is not None else {}

    def evaluate(self, rows: Sequence[tuple]) -> dict[str, np.ndarray]:
        """Each rule segment and trigger condition over ``rows``: name -> bool per row."""
        columns = {
            name: np.array(values, dtype=dtype)
            for name, dtype, values in zip(self.columns, self._dtypes, zip(*rows), strict=True)
        }
        if not columns:  # rules that read nothing (constants): one row each still
            columns = {"": np.zeros(len(rows))}
        out = {}
        for key, evaluate in self._evaluators.items():
            out[key.split(":", 1)[1] if key.startswith("segment:") else key] = evaluate(columns)
        return out


# -- names -> types and readers ---------------------------------------------------

# (state, event) -> value
Reader = Callable[[UserState, ClickEvent], Any]

def _picker(indexes: list[int]) -> Callable[[tuple], tuple] | None:
    if not indexes:
        return None
    if len(indexes) == 1:
        (index,) = indexes
        return lambda values: (values[index],)
    return itemgetter(*indexes)


_TEXT_NAMES = frozenset({"device", "event", "weekday"})
_NUMBER_NAMES = frozenset({"local_hour", "r_score", "f_score", "m_score"})


def known_names(features: FeatureConfig) -> list[str]:
    """Every plain name a rule can read (besides ``trait.<name>`` and ``count(...)``).

    >>> {"view_to_cart", "local_hour", "activity_1h"} <= set(known_names(FeatureConfig()))
    True
    """
    features_of = catalogue(features)
    return sorted({*(name for name in features_of.names if "=" not in name), *_TEXT_NAMES, *_NUMBER_NAMES})


def _type_of(name: str, features: FeatureConfig, counted: Sequence[tuple[str, int]]) -> str:
    if name.startswith("count("):
        return NUMBER
    if name.startswith("trait."):
        return NUMBER if name[6:] in features.numeric_traits else TEXT
    if name in _TEXT_NAMES:
        return TEXT
    if name in known_names(features):
        return NUMBER
    raise RuleError(f"unknown name {name!r}; known names: {', '.join(known_names(features))}, trait.<name>, count(...)")


def _reader(name: str, features: FeatureConfig, default_tz: str) -> Reader:
    if name.startswith("trait."):
        trait = name[6:]
        if trait in features.numeric_traits:
            return lambda s, e: _number(s.features.traits.get(trait))
        return lambda s, e: _text(s.features.traits.get(trait))
    if name == "device":
        return lambda s, e: e.device
    if name == "event":
        return lambda s, e: e.type
    if name == "local_hour":
        return lambda s, e: float(local_time(e.ts, s.features.traits.get("timezone"), default_tz).hour)
    if name == "weekday":
        return lambda s, e: WEEKDAYS[local_time(e.ts, s.features.traits.get("timezone"), default_tz).weekday]
    raise RuleError(f"unknown name {name!r}")


def _count_reader(columns: Sequence[str]) -> Callable[[UserFeatures], list[float]] | None:
    """One function reading every ``count(type,seconds)`` column, as of the user's clock."""
    if not columns:
        return None
    specs = []
    for column in columns:
        event_type, seconds = column[6:-1].rsplit(",", 1)
        specs.append(typed_window(event_type, int(seconds)))

    def counts(user: UserFeatures) -> list[float]:
        windows, now, out = user.windows, user.last_ts, []
        for window, span, width in specs:
            buckets = windows.get(window)
            if not buckets:
                out.append(0.0)
                continue
            oldest = int((now - span) // width)
            if max(buckets) < oldest:  # nothing of that type lately: the usual case
                out.append(0.0)
            else:  # no bucket is newer than the user's clock, so only the lower bound matters
                out.append(float(sum(n for index, n in buckets.items() if index >= oldest)))
        return out

    return counts


_SCORES = ("r_score", "f_score", "m_score")


def _scores(user: UserFeatures, edges: Edges | None) -> tuple[float, float, float]:
    """(R, F, M) as floats, NaN when there are none."""
    if edges is None or user.last_purchase_ts is None or not user.purchases:
        return (math.nan, math.nan, math.nan)
    r, f, m = rfm_scores(edges, recency_days=user.recency_days(user.last_ts), frequency=float(user.purchases),
                         monetary=user.monetary)  # fmt: skip
    return (float(r), float(f), float(m))


def _number(value: Any) -> float:
    return float(value) if type(value) in (int, float) and math.isfinite(value) else math.nan


def _text(value: Any) -> str | None:
    return value if type(value) is str else None
