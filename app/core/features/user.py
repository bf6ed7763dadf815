"""Per-user feature state over event time: the fold.

One :class:`UserFeatures` value holds everything segstream knows about a user:
lifetime counters, the current session, RFM inputs, session cadence, the
per-session funnel, local time of day, and compact time-bucketed counters for
the sliding windows. It is updated event by event with :meth:`UserFeatures.apply`.
Features are read from it only through the catalogue
(:mod:`app.core.features.catalogue`); :meth:`UserFeatures.snapshot` is the
catalogue's published view. Both are pure and take event time from the events,
never from a clock.

>>> cfg = FeatureConfig()
>>> user = UserFeatures()
>>> user.apply(ClickEvent("u1", "add_to_cart", 1_767_225_600.0, value=40.0, device="mobile"), cfg)
'ok'
>>> user.apply(ClickEvent("u1", "purchase", 1_767_225_660.0, value=40.0, device="mobile"), cfg)
'ok'
>>> features = user.snapshot(1_767_225_660.0 + 86_400, cfg)
>>> features["frequency"], features["monetary"], features["recency_days"], features["activity_7d"]
(1, 40.0, 1.0, 2)
"""

from __future__ import annotations

import math
import zlib
from operator import attrgetter
from typing import Any

from app.core.events.decode import ClickEvent
from app.core.features.config import FeatureConfig
from app.core.features.localtime import FOLD_CACHE, fold_facts

OK, LATE, DUPLICATE = "ok", "late", "duplicate"
MAX_GAPS = 7  # session gaps kept for their median
MAX_CATEGORIES = 16  # distinct categories counted; breadth saturates there
_DAY = 86_400.0
_VIEW, _CART, _CHECKOUT, _PURCHASE = 1, 2, 4, 8  # funnel steps, bits of session_flags


class UserFeatures:
    """Everything kept per user; bounded in size whatever the user sends.

    Size bound: at most ``span / width + 1`` buckets per window (73 with the
    defaults), ``dedup_max_ids`` remembered ids, ``max_traits`` traits,
    ``MAX_GAPS`` session gaps and ``MAX_CATEGORIES`` category hashes.
    """

    __slots__ = (
        "first_ts", "last_ts", "events", "late", "duplicates", "custom",
        "page_views", "product_views", "searches", "cart_adds", "cart_removes",
        "checkouts", "purchases", "monetary", "last_purchase_ts",
        "cart_open", "cart_abandoned",
        "sessions", "session_start", "session_end", "closed_session_s",
        "device_events", "mobile_events", "scroll_sum", "scroll_n", "dwell_sum", "dwell_n",
        # schema 5 on: device mix, order values, funnel per session, local time, cadence
        "desktop_events", "tablet_events", "value_sq", "basket_items",
        "session_flags", "with_view", "with_cart", "with_checkout", "view_cart", "cart_purchase", "checkout_purchase",
        "hour_x", "hour_y", "weekend_events", "active_days", "last_day",
        "windows", "recent_ids", "traits", "gaps", "categories",
    )  # fmt: skip

    def __init__(self) -> None:
        self.first_ts = self.last_ts = -math.inf
        self.events = self.late = self.duplicates = self.custom = 0
        self.page_views = self.product_views = self.searches = 0
        self.cart_adds = self.cart_removes = self.checkouts = self.purchases = 0
        self.monetary = 0.0
        self.last_purchase_ts: float | None = None
        self.cart_open = self.cart_abandoned = 0
        self.sessions = 0
        self.session_start = self.session_end = -math.inf
        self.closed_session_s = 0.0
        self.device_events = self.mobile_events = 0
        self.scroll_sum = self.dwell_sum = 0.0
        self.scroll_n = self.dwell_n = 0
        self.desktop_events = self.tablet_events = 0
        self.value_sq = 0.0  # sum of squared order values: their spread
        self.basket_items = 0  # cart items at each purchase, summed (at least 1 a purchase)
        # Funnel per session: bits of the current session, sessions with each step, and
        # sessions with both steps of each pair (view+cart, cart+purchase, checkout+purchase).
        self.session_flags = 0
        self.with_view = self.with_cart = self.with_checkout = 0
        self.view_cart = self.cart_purchase = self.checkout_purchase = 0
        self.hour_x = self.hour_y = 0  # sums of the local hour's point on the circle, in thousandths
        self.weekend_events = 0
        self.active_days = 0
        self.last_day = 0  # ordinal of the latest local date with an event
        self.windows: dict[str, dict[int, int]] = {}
        self.recent_ids: list[float] = []  # crc32 of an id, its event time, ...: oldest first
        self.traits: dict[str, Any] = {}
        self.gaps: list[int] = []  # seconds between the latest sessions, oldest first
        self.categories: list[int] = []  # 16-bit hashes of the distinct categories seen

    # -- update -------------------------------------------------------------

    def apply(self, event: ClickEvent, cfg: FeatureConfig) -> str:
        """Fold one event in; returns ``"ok"``, ``"late"`` or ``"duplicate"``."""
        ts = event.ts
        if ts < self.last_ts - cfg.allowed_lateness_s:
            self.late += 1
            return LATE
        if self._seen(event, ts, cfg):
            self.duplicates += 1
            return DUPLICATE
        if ts > self.last_ts:
            if self.events == 0:
                self.first_ts = ts
            self.last_ts = ts
        self.events += 1
        self._track_session(ts, cfg.session_gap_s)
        self._count_type(event)
        self._count_context(event)
        self._count_local(ts, cfg.default_timezone)
        self._count_windows(ts, cfg.window_specs)
        typed = cfg.typed_specs.get(event.type)
        if typed is not None:
            self._count_windows(ts, typed)
        if event.traits and event.type == "identify":
            self._merge_traits(event.traits, cfg.max_traits)
        return OK

    def _seen(self, event: ClickEvent, ts: float, cfg: FeatureConfig) -> bool:
        # Events without an id are identified by their content, so a redelivered
        # message is still recognised.
        key = event.event_id or f"{event.type}|{ts!r}|{event.page}|{event.value}"
        digest = zlib.crc32(key.encode())
        recent = self.recent_ids  # flat: digest, ts, digest, ts, ... oldest first
        if digest in recent:  # a C-level scan (a time can match too); the exact check below is rare
            horizon = self.last_ts - cfg.dedup_horizon_s
            for i in range(0, len(recent), 2):
                if recent[i] == digest and recent[i + 1] >= horizon:
                    return True
        recent += (digest, ts)
        if len(recent) > 2 * cfg.dedup_max_ids:
            del recent[:2]
        return False

    def _track_session(self, ts: float, gap: float) -> None:
        if ts > self.session_end + gap:
            if self.sessions:
                self.closed_session_s += self.session_end - self.session_start
                self.cart_abandoned += self.cart_open
                self.cart_open = 0
                gaps = self.gaps
                gaps.append(int(ts - self.session_end))
                if len(gaps) > MAX_GAPS:
                    del gaps[0]
            self.sessions += 1
            self.session_flags = 0
            self.session_start = self.session_end = ts
        elif ts > self.session_end:
            self.session_end = ts
        elif ts < self.session_start:
            self.session_start = ts

    def _count_type(self, event: ClickEvent) -> None:
        kind = event.type
        if kind == "page_view":
            self.page_views += 1
        elif kind == "product_view":
            self.product_views += 1
            if not self.session_flags & _VIEW:
                self._flag(_VIEW)
        elif kind == "search":
            self.searches += 1
        elif kind == "add_to_cart":
            self.cart_adds += 1
            self.cart_open += 1
            if not self.session_flags & _CART:
                self._flag(_CART)
        elif kind == "remove_from_cart":
            self.cart_removes += 1
            if self.cart_open:
                self.cart_open -= 1
        elif kind == "checkout":
            self.checkouts += 1
            if not self.session_flags & _CHECKOUT:
                self._flag(_CHECKOUT)
        elif kind == "purchase":
            self.purchases += 1
            value = event.value or 0.0
            self.monetary += value
            self.value_sq += value * value
            self.basket_items += self.cart_open or 1
            self.cart_open = 0
            if not self.session_flags & _PURCHASE:
                self._flag(_PURCHASE)
            if self.last_purchase_ts is None or event.ts > self.last_purchase_ts:
                self.last_purchase_ts = event.ts
        elif kind != "identify":
            self.custom += 1

    def _flag(self, step: int) -> None:
        """The session's first event of a funnel step: count the session and the pairs it completes."""
        flags = self.session_flags
        self.session_flags = flags | step
        if step == _VIEW:
            self.with_view += 1
            self.view_cart += flags & _CART != 0
        elif step == _CART:
            self.with_cart += 1
            self.view_cart += flags & _VIEW != 0
            self.cart_purchase += flags & _PURCHASE != 0
        elif step == _CHECKOUT:
            self.with_checkout += 1
            self.checkout_purchase += flags & _PURCHASE != 0
        else:
            self.cart_purchase += flags & _CART != 0
            self.checkout_purchase += flags & _CHECKOUT != 0

    def _count_local(self, ts: float, default_tz: str) -> None:
        tz = self.traits.get("timezone", default_tz) if self.traits else default_tz
        key = (int(ts // 900), tz if type(tz) is str else default_tz)
        x, y, day, weekend = FOLD_CACHE.get(key) or fold_facts(key, default_tz)
        self.hour_x += x
        self.hour_y += y
        if weekend:
            self.weekend_events += 1
        if day > self.last_day:  # a late event from an earlier day was counted then
            self.active_days += 1
            self.last_day = day

    def _count_context(self, event: ClickEvent) -> None:
        if event.category is not None:
            digest = zlib.crc32(event.category.encode()) & 0xFFFF
            categories = self.categories
            if digest not in categories and len(categories) < MAX_CATEGORIES:
                categories.append(digest)
        if event.device is not None:
            self.device_events += 1
            device = event.device
            if device == "mobile":
                self.mobile_events += 1
            elif device == "desktop":
                self.desktop_events += 1
            elif device == "tablet":
                self.tablet_events += 1
        if event.scroll_depth is not None:
            self.scroll_sum += event.scroll_depth
            self.scroll_n += 1
        if event.dwell_ms is not None:
            self.dwell_sum += event.dwell_ms
            self.dwell_n += 1

    def _count_windows(self, ts: float, specs: tuple[tuple[str, int, int, int], ...]) -> None:
        now = self.last_ts
        windows = self.windows
        for name, span, width, limit in specs:
            index = int(ts // width)
            buckets = windows.get(name)
            if buckets is None:
                windows[name] = {index: 1}
            elif index in buckets:
                buckets[index] += 1  # the common case: the bucket of the previous event
            elif ts > now - span - width:  # else a late event that no window as of now can hold
                buckets[index] = 1
                # Readers count only the buckets in range, so stale ones can wait for a
                # sweep until the window is over its bound: one sweep per many buckets.
                if len(buckets) > limit:
                    oldest = int((now - span) // width)
                    for stale in [i for i in buckets if i < oldest]:
                        del buckets[stale]

    def _merge_traits(self, traits: dict[str, Any], limit: int) -> None:
        for key, value in traits.items():
            if value is None:
                self.traits.pop(key, None)
            elif key in self.traits or len(self.traits) < limit:
                self.traits[key] = value

    # -- read ---------------------------------------------------------------

    def window_count(self, name: str, now: float, windows: dict[str, tuple[int, int]]) -> int:
        span, width = windows[name]
        buckets = self.windows.get(name)
        if not buckets:
            return 0
        oldest = int((now - span) // width)
        newest = int(now // width)
        return sum(count for index, count in buckets.items() if oldest <= index <= newest)

    def recency_days(self, now: float) -> float | None:
        """Days from the last purchase to event time ``now``; None before any purchase."""
        return None if self.last_purchase_ts is None else max(0.0, now - self.last_purchase_ts) / _DAY

    def snapshot(self, now: float, cfg: FeatureConfig) -> dict[str, Any]:
        """Every catalogue feature as of event time ``now``, by name; None where unobserved."""
        from app.core.features.catalogue import catalogue  # the catalogue reads this class

        return catalogue(cfg).snapshot(self, now)

    # -- storage ------------------------------------------------------------

    def copy(self) -> UserFeatures:
        twin = UserFeatures.__new__(UserFeatures)
        for name, value in zip(_SCALARS, _read_scalars(self)):
            setattr(twin, name, value)
        twin.windows = {name: dict(buckets) for name, buckets in self.windows.items()}
        twin.recent_ids = list(self.recent_ids)
        twin.traits = dict(self.traits)
        twin.gaps = list(self.gaps)
        twin.categories = list(self.categories)
        return twin

    def to_record(self) -> list[Any]:
        """A compact JSON-ready list; ``from_record`` reads it back."""
        # Buckets as [index, count] pairs: orjson writes the tuples and dict() reads the
        # pairs back, without a Python-level loop either way.
        windows = {name: list(buckets.items()) for name, buckets in self.windows.items()}
        record = list(_read_scalars(self))
        if not self.events:  # the clocks are -inf until the first event; JSON has no -inf
            record = [_finite_or_none(value) for value in record]
        return [*record, windows, list(self.recent_ids), self.traits, list(self.gaps), list(self.categories)]

    @classmethod
    def from_record(cls, record: list[Any]) -> UserFeatures:
        """Read a record of this or an older layout (they differ in length)."""
        user = cls.__new__(cls)
        if len(record) == len(_SCALARS) + 5:
            *scalars, windows, recent, traits, gaps, categories = record
            names = _SCALARS
        else:  # state schema 4 and older: no cadence, funnel, local time or device mix
            *scalars, windows, recent, traits = record
            names, gaps, categories = _SCALARS_V4, [], []
            for name in _SCALARS[len(_SCALARS_V4) :]:
                setattr(user, name, 0)
        for name, value in zip(names, scalars, strict=True):
            setattr(user, name, -math.inf if value is None and name in _CLOCKS else value)
        user.windows = {name: dict(_pairs(stored)) for name, stored in windows.items()}
        user.recent_ids = recent
        user.traits = traits
        user.gaps = gaps
        user.categories = categories
        return user


_CLOCKS = frozenset({"first_ts", "last_ts", "session_start", "session_end"})


def _pairs(stored: list) -> Any:
    """Window buckets: ``[[index, count], ...]``, or the flat ``[index, count, ...]`` of state schema 1."""
    if stored and type(stored[0]) is int:
        return [[a, b] for a, b in zip(stored[::2], stored[1::2], strict=True)]
    return stored


def _finite_or_none(value: Any) -> Any:
    return None if value == -math.inf else value


_CONTAINERS = ("windows", "recent_ids", "traits", "gaps", "categories")
_SCALARS = tuple(name for name in UserFeatures.__slots__ if name not in _CONTAINERS)
_SCALARS_V4 = _SCALARS[: _SCALARS.index("desktop_events")]
_read_scalars = attrgetter(*_SCALARS)
