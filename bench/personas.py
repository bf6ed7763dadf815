"""A second persona generator: planted shopper behaviours that segstream was not designed for.

Specification (written for the quality benchmark, independently of ``app/simulator.py``)
---------------------------------------------------------------------------------------------
- A population of ``users`` shoppers (default 3,000) is observed for ``days`` days (default 21)
  from ``start`` (a Monday, 00:00 in each user's own time zone). Each user follows exactly one
  planted *behaviour*; the truth maps user id to behaviour name.
- ``k`` in {3, 6, 9} behaviours are planted, taken in a fixed order from :data:`BEHAVIOURS`
  (3: commuter, night_owl, big_ticket; 6: also occasional, replenisher, deal_hunter;
  9: also weekend, tablet_evening, lunch_regular). Sizes are unequal: users are shared out
  by each behaviour's ``weight`` (largest remainder), then shuffled.
- Two pairs are twins on purpose: ``night_owl`` is ``commuter`` with other active hours only,
  and ``occasional`` is ``commuter`` with another session cadence only.
- A behaviour fixes:
  * cadence: the chance that a day is active (``day_p``, times a weekday weight) and the
    number of sessions on an active day (1 + Poisson(``per_day`` - 1)); sessions on one
    day are at least 45 minutes apart, so the gaps between sessions follow from both;
  * active hours of the local day, as windows (hours past local midnight; past 24 spills
    into the next day) and weekday weights Monday..Sunday. A user with no active day gets one
    session on a day drawn in advance (every planted user shows up);
  * a session: a landing ``page_view``, 1 + Poisson(``views`` - 1) ``product_view`` events,
    each preceded by a ``search`` with chance ``search_p``; seconds between events are
    exponential (mean 45 s, 2 s to 10 min);
  * funnel rates per session: view -> cart (``cart_p``: the session adds to the cart),
    cart -> checkout (``checkout_p``), checkout -> purchase (``purchase_p``); each cart add
    is taken back (``remove_from_cart``) with chance ``remove_p``;
  * basket size: a carting session adds 1 + Poisson(``basket`` - 1) items;
  * order value: lognormal with mean ``order_mean`` and log-spread ``order_sigma``;
  * category breadth: each user browses ``breadth`` (+-1) of 20 categories;
  * devices: each session's device is drawn from ``devices``.
- Users vary around their behaviour: cadence and order mean times lognormal(0, 0.25),
  funnel rates times lognormal(0, 0.2) (capped at 0.98).
- Time zones: 65% of users send an ``identify`` event first with traits
  ``{"timezone": <IANA name>}`` (New York, Los Angeles, London, Berlin, Tokyo, Sydney);
  the others are in UTC and send no identify.
- Over time (default mode): users arrive on a uniformly drawn day among the first 10, and
  days 14 to 16 are a site-wide sale (cart rate x1.5, order values x0.8), the same for every
  behaviour, so the truth does not change. ``stationary=True``: every user arrives on day 0
  or 1 and there is no sale; nothing changes over time.
- Output: one message per session, in order of session start: a JSON array of that user's
  events (a JSON object when the session has one event). Every event has an ``event_id``
  and a ``session_id``. Everything is drawn from ``random.Random`` seeded by strings, so the
  same spec gives the same bytes in any process.

>>> messages, truth = build(PersonaSpec(k=3, users=30, days=3, seed=1))
>>> len(truth), len(set(truth.values())), build(PersonaSpec(k=3, users=30, days=3, seed=1))[0] == messages
(30, 3, True)
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import orjson

__all__ = ["BEHAVIOURS", "Behaviour", "PersonaSpec", "behaviours", "build", "generate", "truth"]

CATEGORIES = tuple(f"cat{i:02d}" for i in range(20))
TIMEZONES = ("America/New_York", "America/Los_Angeles", "Europe/London", "Europe/Berlin", "Asia/Tokyo",
             "Australia/Sydney")
IDENTIFY_SHARE = 0.65
SALE_DAYS = (14, 15, 16)
_ALL_WEEK = (1.0, 1.0, 1.0, 1.0, 1.0, 0.6, 0.6)


@dataclass(frozen=True)
class Behaviour:
    """One planted behaviour (see the module docstring for what each field means)."""

    name: str
    weight: float
    day_p: float
    per_day: float
    hours: tuple[tuple[float, float], ...]
    weekdays: tuple[float, ...] = _ALL_WEEK
    views: float = 4.0
    search_p: float = 0.1
    cart_p: float = 0.15
    remove_p: float = 0.2
    checkout_p: float = 0.5
    purchase_p: float = 0.7
    basket: float = 1.3
    order_mean: float = 35.0
    order_sigma: float = 0.4
    breadth: int = 3
    devices: dict[str, float] = field(default_factory=lambda: {"mobile": 0.85, "desktop": 0.1, "tablet": 0.05})


_COMMUTER = Behaviour("commuter", 0.22, day_p=0.9, per_day=2.2, hours=((7.0, 9.0), (17.0, 19.5)))
BEHAVIOURS: tuple[Behaviour, ...] = (
    _COMMUTER,
    replace(_COMMUTER, name="night_owl", weight=0.10, hours=((22.5, 26.0),)),  # differs in active hours only
    Behaviour("big_ticket", 0.08, day_p=0.3, per_day=1.0, hours=((10.0, 22.0),), weekdays=(1,) * 7, views=14,
              search_p=0.3, cart_p=0.25, remove_p=0.35, checkout_p=0.6, purchase_p=0.6, basket=1.0,
              order_mean=650.0, order_sigma=0.5, breadth=1, devices={"desktop": 0.8, "mobile": 0.1, "tablet": 0.1}),
    replace(_COMMUTER, name="occasional", weight=0.18, day_p=0.12, per_day=1.0),  # differs in cadence only
    Behaviour("replenisher", 0.12, day_p=0.25, per_day=1.0, hours=((8.0, 11.0),), weekdays=(1, 1, 1, 1, 1, .3, .3),
              views=3, search_p=0.05, cart_p=0.9, remove_p=0.05, checkout_p=0.95, purchase_p=0.95, basket=9.0,
              order_mean=120.0, order_sigma=0.25, breadth=2, devices={"desktop": 0.7, "mobile": 0.3}),
    Behaviour("deal_hunter", 0.10, day_p=0.6, per_day=2.5, hours=((11.0, 14.0), (19.0, 23.0)), weekdays=(1,) * 7,
              views=9, search_p=0.5, cart_p=0.5, remove_p=0.6, checkout_p=0.3, purchase_p=0.35, basket=3.0,
              order_mean=18.0, order_sigma=0.5, breadth=8, devices={"mobile": 0.7, "desktop": 0.3}),
    Behaviour("weekend", 0.09, day_p=0.85, per_day=1.8, hours=((10.0, 17.0),), weekdays=(0, 0, 0, 0, .1, 1, 1),
              views=6, search_p=0.15, cart_p=0.35, checkout_p=0.7, purchase_p=0.8, basket=2.5, order_mean=90.0,
              breadth=4, devices={"desktop": 0.5, "tablet": 0.4, "mobile": 0.1}),
    Behaviour("tablet_evening", 0.06, day_p=0.7, per_day=1.5, hours=((19.0, 23.0),), weekdays=(1,) * 7, views=10,
              cart_p=0.05, remove_p=0.3, checkout_p=0.4, purchase_p=0.5, basket=1.0, order_mean=40.0, breadth=6,
              devices={"tablet": 0.85, "mobile": 0.1, "desktop": 0.05}),
    Behaviour("lunch_regular", 0.05, day_p=0.8, per_day=1.0, hours=((12.0, 13.5),),
              weekdays=(1, 1, 1, 1, 1, .05, .05), views=3, search_p=0.05, cart_p=0.45, remove_p=0.1,
              checkout_p=0.85, purchase_p=0.9, basket=1.8, order_mean=55.0, order_sigma=0.3, breadth=2,
              devices={"desktop": 0.9, "mobile": 0.1}),
)


@dataclass(frozen=True)
class PersonaSpec:
    """What to generate: ``k`` behaviours, ``users`` users over ``days`` days from ``start``."""

    k: int = 6
    users: int = 3_000
    days: int = 21
    seed: int = 7
    stationary: bool = False
    start: date = date(2026, 9, 7)  # a Monday; 21 days end before any DST change in these zones

    def __post_init__(self) -> None:
        if not 1 <= self.k <= len(BEHAVIOURS):
            raise ValueError(f"k must be 1 to {len(BEHAVIOURS)}")
        if self.users < self.k or self.days < 1:
            raise ValueError("need at least k users and one day")


def behaviours(k: int) -> tuple[Behaviour, ...]:
    """The first ``k`` behaviours, in the planting order."""
    return BEHAVIOURS[:k]


def truth(spec: PersonaSpec) -> dict[str, str]:
    """User id -> planted behaviour name; sizes follow the weights (largest remainder)."""
    planted = behaviours(spec.k)
    total = sum(b.weight for b in planted)
    shares = [spec.users * b.weight / total for b in planted]
    counts = [max(1, math.floor(s)) for s in shares]
    by_remainder = sorted(range(len(planted)), key=lambda i: counts[i] - shares[i])
    for i in by_remainder[: spec.users - sum(counts)]:
        counts[i] += 1
    names = [b.name for b, n in zip(planted, counts) for _ in range(n)]
    random.Random(f"assign:{spec.seed}:{spec.k}:{spec.users}").shuffle(names)
    return {f"p{i:05d}": name for i, name in enumerate(names)}


def build(spec: PersonaSpec) -> tuple[list[bytes], dict[str, str]]:
    """All messages, in order, and the truth."""
    return list(generate(spec)), truth(spec)


def generate(spec: PersonaSpec) -> Iterator[bytes]:
    """Raw messages (JSON bytes), one per session, in order of session start."""
    by_name = {b.name: b for b in BEHAVIOURS}
    sessions: list[tuple[float, str, list[dict]]] = []
    for user, name in truth(spec).items():
        rng = random.Random(f"user:{spec.seed}:{spec.k}:{user}")
        sessions.extend(_user_sessions(user, by_name[name], spec, rng))
    sessions.sort(key=lambda s: (s[0], s[1]))
    for _, _, events in sessions:
        yield orjson.dumps(events[0] if len(events) == 1 else events)


def _user_sessions(user: str, b: Behaviour, spec: PersonaSpec, rng: random.Random):
    tz_name = rng.choice(TIMEZONES) if rng.random() < IDENTIFY_SHARE else None
    tz = ZoneInfo(tz_name or "UTC")
    pace = rng.lognormvariate(0.0, 0.25)
    rates = {key: min(0.98, getattr(b, key) * rng.lognormvariate(0.0, 0.2))
             for key in ("cart_p", "remove_p", "checkout_p", "purchase_p", "search_p")}
    order_mean = b.order_mean * rng.lognormvariate(0.0, 0.25)
    breadth = max(1, min(len(CATEGORIES), b.breadth + rng.choice((-1, 0, 0, 1))))
    categories = rng.sample(CATEGORIES, breadth)
    arrival = rng.randrange(2 if spec.stationary else min(10, spec.days))
    starts: list[float] = []
    days = [spec.start + timedelta(days=day) for day in range(arrival, spec.days)]
    fallback = rng.choice([d for d in days if b.weekdays[d.weekday()] > 0] or days)
    active = [d for d in days if rng.random() < min(1.0, b.day_p * pace * b.weekdays[d.weekday()])]
    for local_day in active or [fallback]:
        n = 1 + _poisson(rng, max(0.0, b.per_day * pace - 1.0))
        midnight = datetime.combine(local_day, time(0), tzinfo=tz)
        day_starts: list[float] = []
        for _ in range(n):
            lo, hi = rng.choice(b.hours)
            ts = (midnight + timedelta(hours=rng.uniform(lo, hi))).timestamp()
            if all(abs(ts - other) >= 2_700 for other in day_starts):
                day_starts.append(ts)
        starts.extend(sorted(day_starts))
    counter = iter(range(1, 10**9))
    out, last_end = [], -math.inf
    for number, start in enumerate(sorted(starts)):
        if start < last_end + 2_700:  # keep sessions apart (segstream closes a session after 30 min)
            continue
        sale = not spec.stationary and int((start - _day0(spec, tz)) // 86_400) in SALE_DAYS
        events = _session(user, b, rates, order_mean, categories, start, number, sale, rng, counter)
        if number == 0 and tz_name is not None:
            events.insert(0, {"user_id": user, "type": "identify", "ts": round(start - 1.0, 3),
                              "event_id": f"{user}:0", "traits": {"timezone": tz_name}})
        last_end = events[-1]["ts"]
        out.append((start, user, events))
    return out


def _day0(spec: PersonaSpec, tz: ZoneInfo) -> float:
    return datetime.combine(spec.start, time(0), tzinfo=tz).timestamp()


def _session(user, b, rates, order_mean, categories, start, number, sale, rng, counter) -> list[dict]:
    device = _pick(rng, b.devices)
    session_id = f"{user}:s{number}"
    ts = start
    events: list[dict] = []

    def emit(kind: str, **fields) -> None:
        nonlocal ts
        events.append({"user_id": user, "type": kind, "ts": round(ts, 3), "event_id": f"{user}:{next(counter)}",
                       "session_id": session_id, "device": device, **fields})
        ts += min(600.0, max(2.0, rng.expovariate(1 / 45.0)))

    emit("page_view", page="/", scroll_depth=round(rng.betavariate(2, 2), 3))
    viewed = []
    for _ in range(1 + _poisson(rng, b.views - 1.0)):
        if rng.random() < rates["search_p"]:
            emit("search", page="/search")
        category = rng.choice(categories)
        viewed.append(category)
        emit("product_view", category=category, page=f"/p/{category}/{rng.randrange(500)}",
             scroll_depth=round(rng.betavariate(2, 2), 3))
    if rng.random() >= min(0.98, rates["cart_p"] * (1.5 if sale else 1.0)):
        return events
    for _ in range(1 + _poisson(rng, b.basket - 1.0)):
        category = rng.choice(viewed)
        emit("add_to_cart", category=category)
        if rng.random() < rates["remove_p"]:
            emit("remove_from_cart", category=category)
    if rng.random() < rates["checkout_p"]:
        emit("checkout")
        if rng.random() < rates["purchase_p"]:
            mu = math.log(order_mean * (0.8 if sale else 1.0)) - b.order_sigma**2 / 2
            emit("purchase", value=round(rng.lognormvariate(mu, b.order_sigma), 2))
    return events


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method (lam is small here)."""
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
