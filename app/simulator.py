"""Persona-driven click traffic: a deterministic simulator of the click stream.

Every simulated user follows one of five personas (:data:`PERSONAS`) that differ in how
they browse, search, fill carts and buy. The stream is meant to exercise the whole
pipeline: it follows the click event contract, is keyed by ``user_id``, carries a known
ground truth (:func:`assign_personas`), shifts its behaviour part-way through (to wake
the drift detector), and contains a few late and duplicated events (to exercise
event-time windows and idempotent sinks).

The simulator is pure: the same :class:`Scenario` always yields the same messages. It
reads no clock and does no I/O; time comes from ``Scenario.start_ms`` onwards.

Ordering guarantees, with ``W = MAX_LATENESS_MS`` (120 s):

- Events that are neither late nor duplicates come out in event-time order.
- A late event keeps its ``ts`` but comes out up to ``W`` later, measured in the
  stream's event time; a duplicate is a copy (same ``event_id``, same content) of an
  earlier event that comes out up to 30 s after it, measured the same way.
- With one event per message, therefore, every event's ``ts`` is at least the largest
  ``ts`` emitted before it minus ``W``. With several events per message, the same holds
  per user (a user's events come out in the same order whatever the message size).
- A user's first event is always ``identify``; the first event of a session is never
  late and never duplicated.

Examples
--------
>>> scenario = Scenario(users=5, events=60, seed=3)
>>> messages = list(generate(scenario))
>>> sum(len(message.events) for message in messages)
60
>>> first = messages[0].events[0]
>>> first["type"], sorted(first["traits"]), first["consent"]
('identify', ['age', 'country'], True)
>>> messages == list(generate(scenario))
True
>>> sorted(assign_personas(scenario).items())[0]
('u000000', 'bargain_hunter')
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count

import orjson

__all__ = ["PERSONAS", "MAX_LATENESS_MS", "Message", "Scenario", "assign_personas", "generate"]

PERSONAS = ("bargain_hunter", "big_spender", "window_shopper", "cart_abandoner", "loyal_regular")

MAX_LATENESS_MS = 120_000
"""How far (in event time) a late event may come out behind the stream."""

SESSION_GAP_MS = 30 * 60_000
"""Inactivity that ends a session; gaps between a user's sessions are always longer."""

_MIN_SESSION_GAP_MS = SESSION_GAP_MS + 60_000
_MAX_DUPLICATE_DELAY_MS = 30_000
_DAY_MS = 86_400_000

CATEGORIES = ("electronics", "fashion", "home", "beauty", "sports", "books", "toys", "grocery")
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "other")
_COUNTRY_WEIGHTS = (0.30, 0.12, 0.12, 0.10, 0.08, 0.08, 0.05, 0.15)
_TABLET_SHARE = 0.12  # of the sessions that are not on mobile

# Paths are built once: formatting strings per event would cost more than the rest.
_PRODUCT_PAGES = {c: tuple(f"/p/{c}/{i:04d}" for i in range(250)) for c in CATEGORIES}
_LIST_PAGES = {c: ("/", f"/c/{c}", f"/c/{c}/new", f"/c/{c}/deals", "/deals", "/help") for c in CATEGORIES}
_SEARCH_PAGES = {
    c: (f"/search?q={c}", f"/search?q=cheap+{c}", f"/search?q={c}+sale", f"/search?q=best+{c}")
    for c in CATEGORIES
}

# Event types; the first block is "browsing", the second the cart funnel.
_PAGE, _PRODUCT, _SEARCH = "page_view", "product_view", "search"
_ADD, _REMOVE, _CHECKOUT, _PURCHASE, _IDENTIFY = (
    "add_to_cart", "remove_from_cart", "checkout", "purchase", "identify",
)


@dataclass(frozen=True)
class _Persona:
    """How one persona behaves; a user's own habits are drawn around these means."""

    budget_weight: float  # events of a user relative to the average user
    browse_events: float  # mean browsing events (page/product views, searches) a session
    search_share: float  # chance that a browsing event is a search
    product_share: float  # chance that a non-search browsing event is a product view
    cart_rate: float  # chance that a session adds to the cart
    second_item: float  # chance that a cart gets a second item
    buy_rate: float  # chance that a session with a cart ends in a purchase
    checkout_rate: float  # chance that an unbought cart still reaches checkout
    price: tuple[float, float]  # item price range, drawn log-uniformly
    mobile: float  # share of sessions on mobile
    scroll: float  # mean scroll depth
    dwell_ms: float  # mean dwell on a page
    regular: bool  # inter-session gaps regular (uniform) rather than bursty (exponential)
    age: tuple[float, float]  # mean and spread
    favourites: tuple[str, ...]  # categories the persona prefers

    @property
    def session_events(self) -> float:
        """Rough mean events a session, to pace sessions over the span."""
        cart = self.cart_rate * (1 + self.second_item + 2 * self.buy_rate)
        return self.browse_events + cart


_BEHAVIOUR = {
    "bargain_hunter": _Persona(
        1.2, 10.0, 0.33, 0.80, 0.55, 0.10, 0.45, 0.20, (5.0, 30.0), 0.60, 0.30, 7_000, False,
        (27, 7), ("grocery", "fashion", "toys"),
    ),
    "big_spender": _Persona(
        0.7, 2.2, 0.08, 0.75, 0.85, 0.15, 0.80, 0.50, (200.0, 1200.0), 0.15, 0.55, 45_000, False,
        (46, 9), ("electronics", "home"),
    ),
    "window_shopper": _Persona(
        1.0, 11.0, 0.05, 0.60, 0.02, 0.0, 0.0, 0.0, (20.0, 200.0), 0.50, 0.80, 55_000, False,
        (31, 9), ("fashion", "home", "beauty"),
    ),
    "cart_abandoner": _Persona(
        0.9, 4.5, 0.10, 0.80, 0.88, 0.30, 0.065, 0.30, (30.0, 150.0), 0.75, 0.45, 18_000, False,
        (33, 9), ("electronics", "fashion", "sports"),
    ),
    "loyal_regular": _Persona(
        1.5, 2.0, 0.03, 0.65, 0.65, 0.10, 0.80, 0.30, (20.0, 80.0), 0.35, 0.45, 16_000, True,
        (41, 12), ("grocery", "beauty", "books"),
    ),
}


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the stream: events of one user, keyed by that user's id.

    Parameters
    ----------
    key
        The ``user_id`` of every event in the message (the Kafka message key).
    events
        One or more events of that user, in the order they were emitted.
    """

    key: str
    events: tuple[dict, ...]

    def to_bytes(self) -> bytes:
        """The message as it goes on the wire: a JSON object for one event, an array for several.

        Examples
        --------
        >>> Message("u1", ({"user_id": "u1", "type": "search", "ts": 1},)).to_bytes()
        b'{"user_id":"u1","type":"search","ts":1}'
        >>> Message("u1", ({"ts": 1}, {"ts": 2})).to_bytes()
        b'[{"ts":1},{"ts":2}]'
        """
        events = self.events
        return orjson.dumps(events[0] if len(events) == 1 else events)


@dataclass(frozen=True)
class Scenario:
    """What to simulate.

    Parameters
    ----------
    users
        Number of users; ids are ``u000000``, ``u000001``, ...
    events
        Exact number of events in the stream, duplicates included. At least ``users``:
        every user gets at least its ``identify`` event.
    seed
        Seed of the only random generator; same scenario, same stream.
    start_ms
        Event time of the start of the stream, epoch milliseconds (2026-01-01T00:00Z).
    persona_weights
        Share of users per persona: a sequence aligned with :data:`PERSONAS` or a mapping
        from persona name to weight (missing personas get none). Equal by default.
    shift_at
        Fraction of the stream's events after which the behaviour shifts. A session that
        starts after that point is shifted: its prices are multiplied by
        ``1 + 0.6 * shift_strength`` and its chance to be on mobile grows by
        ``0.25 * shift_strength`` (at most 1). Personas do not change.
    shift_strength
        Size of the shift; 0 disables it.
    late_fraction
        Fraction of events that come out late, up to :data:`MAX_LATENESS_MS` of event
        time after their place in the stream.
    duplicate_fraction
        Fraction of events that are emitted a second time (same ``event_id``) shortly
        after. Duplicates count towards ``events``.
    events_per_message
        Up to this many consecutive events of one user per message. A user's buffer is
        flushed when full and, with ``flush_at_session_end``, when the user's session ends.
    flush_at_session_end
        Flush a user's buffer when the session ends, as a browser collector would. Off,
        every message but each user's last holds exactly ``events_per_message`` events
        (a backlog shape for benchmarks).
    span_days
        Event-time span over which each user's sessions are spread (roughly: the last
        sessions can run past it).
    """

    users: int = 2000
    events: int = 100_000
    seed: int = 7
    start_ms: int = 1_767_225_600_000
    persona_weights: Sequence[float] | Mapping[str, float] = field(default=(1.0,) * len(PERSONAS))
    shift_at: float = 0.5
    shift_strength: float = 1.0
    late_fraction: float = 0.01
    duplicate_fraction: float = 0.002
    events_per_message: int = 1
    flush_at_session_end: bool = True
    span_days: float = 7.0

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError(f"users must be at least 1, got {self.users}")
        if self.events < self.users:
            raise ValueError(f"events ({self.events}) must be at least users ({self.users})")
        if not 0.0 <= self.shift_at <= 1.0:
            raise ValueError(f"shift_at must be within [0, 1], got {self.shift_at}")
        if self.shift_strength < 0:
            raise ValueError(f"shift_strength must be >= 0, got {self.shift_strength}")
        for name in ("late_fraction", "duplicate_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be within [0, 1), got {getattr(self, name)}")
        if self.events_per_message < 1:
            raise ValueError(f"events_per_message must be at least 1, got {self.events_per_message}")
        if self.span_days <= 0:
            raise ValueError(f"span_days must be positive, got {self.span_days}")
        _persona_shares(self.persona_weights)


def _persona_shares(weights: Sequence[float] | Mapping[str, float]) -> list[float]:
    if isinstance(weights, Mapping):
        unknown = set(weights) - set(PERSONAS)
        if unknown:
            raise ValueError(f"unknown personas in persona_weights: {sorted(unknown)}")
        weights = [float(weights.get(name, 0.0)) for name in PERSONAS]
    weights = [float(w) for w in weights]
    if len(weights) != len(PERSONAS) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"persona_weights needs {len(PERSONAS)} non-negative weights, not all zero")
    total = sum(weights)
    return [w / total for w in weights]


def _apportion(total: int, shares: Sequence[float]) -> list[int]:
    """Split ``total`` into integers proportional to ``shares`` (largest remainder)."""
    raw = [total * s for s in shares]
    counts = [int(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


class _User:
    """A user's fixed habits and the state of its timeline while the stream runs."""

    __slots__ = (
        "index", "user_id", "persona", "budget", "mobile", "scroll", "dwell_ms", "search_share",
        "cart_rate", "buy_rate", "favourite", "traits", "seq", "sessions", "used", "last_ts",
    )


def _plan_users(scenario: Scenario, rnd: random.Random) -> list[_User]:
    """Draw every user's persona, habits, traits and event budget."""
    n = scenario.users
    per_persona = _apportion(n, _persona_shares(scenario.persona_weights))
    personas = [name for name, k in zip(PERSONAS, per_persona) for _ in range(k)]
    rnd.shuffle(personas)
    users = []
    for index, name in enumerate(personas):
        p = _BEHAVIOUR[name]
        u = _User()
        u.index = index
        u.user_id = f"u{index:06d}"
        u.persona = name
        # Habits vary around the persona so that segments overlap a little, as real ones do.
        u.mobile = min(max(p.mobile + rnd.uniform(-0.1, 0.1), 0.0), 1.0)
        u.scroll = min(max(p.scroll + rnd.uniform(-0.08, 0.08), 0.05), 0.95)
        u.dwell_ms = p.dwell_ms * rnd.uniform(0.7, 1.3)
        u.search_share = p.search_share * rnd.uniform(0.7, 1.3)
        u.cart_rate = min(p.cart_rate * rnd.uniform(0.85, 1.15), 1.0)
        u.buy_rate = min(p.buy_rate * rnd.uniform(0.85, 1.15), 1.0)
        u.favourite = p.favourites[int(rnd.random() * len(p.favourites))]
        age = int(round(rnd.gauss(*p.age)))
        u.traits = {
            "age": min(max(age, 18), 90),
            "country": rnd.choices(COUNTRIES, _COUNTRY_WEIGHTS)[0],
        }
        u.seq = 0
        u.sessions = 0
        u.used = 0
        u.last_ts = scenario.start_ms
        users.append(u)
    weights = [_BEHAVIOUR[u.persona].budget_weight * rnd.uniform(0.6, 1.4) for u in users]
    total = sum(weights)
    # Every user gets its identify event; the rest is shared by weight.
    extra = _apportion(scenario.events - n, [w / total for w in weights])
    for u, e in zip(users, extra):
        u.budget = 1 + e
    return users


def assign_personas(scenario: Scenario) -> dict[str, str]:
    """Ground truth: the persona of every user that :func:`generate` simulates.

    Parameters
    ----------
    scenario
        The scenario given to :func:`generate`.

    Returns
    -------
    dict
        ``user_id`` to persona name, for all ``scenario.users`` users.

    Examples
    --------
    >>> truth = assign_personas(Scenario(users=10, events=100))
    >>> len(truth), sorted(set(truth.values())) == sorted(PERSONAS)
    (10, True)
    """
    users = _plan_users(scenario, random.Random(scenario.seed))
    return {u.user_id: u.persona for u in users}


class _Simulation:
    """Runs the users' timelines and merges them into one stream in event-time order."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._rnd = random.Random(scenario.seed)
        self._users = _plan_users(scenario, self._rnd)
        self._end_ms = scenario.start_ms + int(scenario.span_days * _DAY_MS)
        self._price_factor = 1.0 + 0.6 * scenario.shift_strength
        self._mobile_shift = 0.25 * scenario.shift_strength
        # Late events and duplicates wait here, keyed by when they come out.
        self._held: list[tuple[int, int, int, dict]] = []
        self._held_order = count()

    def events(self) -> Iterator[tuple[int, dict, bool]]:
        """Yield ``(user index, event, user's buffer may flush)`` in stream order."""
        scenario = self.scenario
        users = self._users
        held = self._held
        heappop, heapreplace = heapq.heappop, heapq.heapreplace
        shift_from = math.ceil(scenario.shift_at * scenario.events)
        if scenario.shift_strength == 0:
            shift_from = scenario.events + 1
        sessions: list[list[dict] | None] = [None] * len(users)
        positions = [0] * len(users)
        # One entry a user: (event time of its next event or session start, user index).
        timeline = [(self._next_start(u, scenario.start_ms, first=True), i) for i, u in enumerate(users)]
        heapq.heapify(timeline)
        emitted = 0
        while timeline:
            key, i = timeline[0]
            if held and held[0][0] <= key:
                _, _, j, event = heappop(held)
                emitted += 1
                # Outside a session the user's buffer would wait for the next session.
                yield j, event, sessions[j] is None
                continue
            session = sessions[i]
            if session is None:
                session = sessions[i] = self._session(users[i], key, emitted >= shift_from)
                k = 0
            else:
                k = positions[i]
            event = session[k]
            k += 1
            if k < len(session):
                positions[i] = k
                heapreplace(timeline, (session[k]["ts"], i))
                flush = False
            else:
                sessions[i] = None
                user = users[i]
                if user.budget > 0:
                    heapreplace(timeline, (self._next_start(user, user.last_ts, first=False), i))
                else:
                    heappop(timeline)
                flush = True
            emitted += 1
            yield i, event, flush
        while held:
            _, _, j, event = heappop(held)
            yield j, event, True

    def _next_start(self, user: _User, now: int, first: bool) -> int:
        """Start of the user's next session, pacing its sessions over the rest of the span."""
        p = _BEHAVIOUR[user.persona]
        # Blend the persona's expected session size with what this user has done so far.
        per_session = (user.used + 2 * p.session_events) / (user.sessions + 2)
        sessions_left = user.budget / per_session
        time_left = self._end_ms - now
        mean_gap = max(time_left, 0) / (sessions_left + 1)
        r = self._rnd.random()
        # Regular users come back at steady intervals, the others in bursts; capping the
        # burst keeps one long absence from pushing a user's last sessions past the span.
        draw = 0.5 + r if p.regular else min(-math.log(1.0 - r), 3.0)
        if first:
            return now + int(mean_gap * draw)
        extra = int(max(mean_gap - _MIN_SESSION_GAP_MS, 300_000) * draw)
        if _MIN_SESSION_GAP_MS + extra > time_left > _MIN_SESSION_GAP_MS:
            extra = int((time_left - _MIN_SESSION_GAP_MS) * r)
        return now + _MIN_SESSION_GAP_MS + extra

    def _session(self, user: _User, start: int, shifted: bool) -> list[dict]:
        """Build the user's next session from ``start``; hold back its late events."""
        rnd = self._rnd.random
        p = _BEHAVIOUR[user.persona]
        scenario = self.scenario
        uid = user.user_id
        user.sessions += 1
        session_id = f"{uid}-s{user.sessions}"
        mobile = min(user.mobile + self._mobile_shift, 1.0) if shifted else user.mobile
        price_factor = self._price_factor if shifted else 1.0
        r = rnd()
        device = "mobile" if r < mobile else "tablet" if r < mobile + (1 - mobile) * _TABLET_SHARE else "desktop"
        category = user.favourite if rnd() < 0.7 else CATEGORIES[int(rnd() * len(CATEGORIES))]

        # Plan the session as a list of event types first, then materialise it.
        plan = [_IDENTIFY] if user.seq == 0 else []
        n_browse = max(1, int(p.browse_events * (0.4 + 1.2 * rnd()) + 0.5))
        search_share = user.search_share
        product_cut = search_share + (1 - search_share) * p.product_share
        for _ in range(n_browse):
            r = rnd()
            plan.append(_SEARCH if r < search_share else _PRODUCT if r < product_cut else _PAGE)
        if rnd() < user.cart_rate:
            # The first item goes in mid-session; browsing goes on after it.
            plan.insert(len(plan) - int(rnd() * (n_browse // 2 + 1)), _ADD)
            if rnd() < p.second_item:
                plan.append(_ADD)
                if rnd() < 0.3:
                    plan.append(_REMOVE)
            if rnd() < user.buy_rate:
                plan += (_CHECKOUT, _PURCHASE)
            elif rnd() < p.checkout_rate:
                plan.append(_CHECKOUT)
        if len(plan) > user.budget:
            plan = plan[: user.budget]

        held, held_order = self._held, self._held_order
        late_fraction, duplicate_fraction = scenario.late_fraction, scenario.duplicate_fraction
        lo, span = math.log(p.price[0]), math.log(p.price[1] / p.price[0])
        dwell_mean, scroll_mean = user.dwell_ms, user.scroll
        products, lists, searches = _PRODUCT_PAGES[category], _LIST_PAGES[category], _SEARCH_PAGES[category]
        product = products[int(rnd() * len(products))]
        cart: list[float] = []
        events: list[dict] = []
        budget, seq, ts = user.budget, user.seq, start
        index = user.index
        for position, kind in enumerate(plan):
            if budget <= 0:
                break
            event = {
                "user_id": uid, "type": kind, "ts": ts, "event_id": f"{uid}-{seq}",
                "session_id": session_id, "device": device, "page": "", "category": category,
            }
            if kind is _PRODUCT or kind is _PAGE:
                if kind is _PRODUCT:
                    product = products[int(rnd() * len(products))]
                    event["page"] = product
                else:
                    event["page"] = lists[int(rnd() * 6)]
                scroll = scroll_mean + (rnd() + rnd() - 1.0) * 0.3
                event["scroll_depth"] = 0.0 if scroll < 0 else 1.0 if scroll > 1 else round(scroll, 3)
                dwell = int(dwell_mean * (0.3 + 1.4 * rnd()))
                event["dwell_ms"] = dwell
                step = dwell + 1_000 + int(rnd() * 9_000)
            elif kind is _SEARCH:
                event["page"] = searches[int(rnd() * 4)]
                step = 3_000 + int(rnd() * 12_000)
            elif kind is _ADD:
                price = round(math.exp(lo + span * rnd()) * price_factor, 2)
                cart.append(price)
                event["page"] = product
                event["value"] = price
                step = 5_000 + int(rnd() * 25_000)
            elif kind is _REMOVE:
                event["page"] = "/cart"
                if len(cart) > 1:
                    cart.pop()
                step = 4_000 + int(rnd() * 10_000)
            elif kind is _CHECKOUT:
                event["page"] = "/checkout"
                event["value"] = round(sum(cart), 2)
                step = 20_000 + int(rnd() * 100_000)
            elif kind is _PURCHASE:
                event["page"] = "/checkout/confirmation"
                event["value"] = round(sum(cart), 2)
                step = 2_000 + int(rnd() * 8_000)
            else:  # identify: a login at the start of the user's first session
                event["page"] = "/account/login"
                event["traits"] = dict(user.traits)
                event["consent"] = True
                step = 2_000 + int(rnd() * 6_000)
            seq += 1
            budget -= 1
            if position and rnd() < late_fraction:
                heapq.heappush(held, (ts + 1 + int(rnd() * MAX_LATENESS_MS), next(held_order), index, event))
            else:
                events.append(event)
            if position and budget and rnd() < duplicate_fraction:
                budget -= 1
                delay = 1 + int(rnd() * _MAX_DUPLICATE_DELAY_MS)
                heapq.heappush(held, (ts + delay, next(held_order), index, dict(event)))
            user.last_ts = ts  # the session's last event may be a late one: pace from it
            ts += step
        user.used += user.budget - budget
        user.budget, user.seq = budget, seq
        return events


def generate(scenario: Scenario) -> Iterator[Message]:
    """Simulate the click stream of ``scenario``.

    Parameters
    ----------
    scenario
        What to simulate; the same scenario always gives the same messages.

    Yields
    ------
    Message
        Messages in (approximately) event-time order across users, each keyed by the
        ``user_id`` of its events. ``scenario.events`` events in all, duplicates included.

    Examples
    --------
    >>> messages = list(generate(Scenario(users=4, events=80, events_per_message=5)))
    >>> sum(len(m.events) for m in messages), max(len(m.events) for m in messages) <= 5
    (80, True)
    >>> all({e["user_id"] for e in m.events} == {m.key} for m in messages)
    True
    """
    simulation = _Simulation(scenario)
    users = simulation._users
    ids = [u.user_id for u in users]
    k = scenario.events_per_message
    if k == 1:
        for i, event, _ in simulation.events():
            yield Message(ids[i], (event,))
        return
    buffers: list[list[dict]] = [[] for _ in users]
    at_session_end = scenario.flush_at_session_end
    for i, event, flush in simulation.events():
        buffer = buffers[i]
        buffer.append(event)
        if (flush and at_session_end) or len(buffer) >= k:
            yield Message(ids[i], tuple(buffer))
            buffer.clear()
    for i, buffer in enumerate(buffers):  # with flush_at_session_end, empty in practice
        if buffer:
            yield Message(ids[i], tuple(buffer))
