"""Per-user feature state over event time.

One :class:`UserFeatures` value holds everything segstream knows about a user:
lifetime counters, the current session, RFM inputs and compact time-bucketed
counters for the sliding windows. It is updated event by event with
:meth:`UserFeatures.apply` and read with :meth:`UserFeatures.snapshot`; both are
pure and take event time from the events, never from a clock.

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
from dataclasses import dataclass, field
from typing import Any

from app.core.events import ClickEvent

# Window name -> (span, bucket width) in seconds. A window's count includes the
# whole oldest bucket it overlaps, so its effective span is span .. span + width.
DEFAULT_WINDOWS: dict[str, tuple[int, int]] = {
    "5m": (300, 60),
    "1h": (3_600, 300),
    "24h": (86_400, 3_600),
    "7d": (604_800, 21_600),
}

OK, LATE, DUPLICATE = "ok", "late", "duplicate"
_DAY = 86_400.0


@dataclass(frozen=True)
class FeatureConfig:
    """How per-user features are kept. Every field is a documented setting."""

    windows: dict[str, tuple[int, int]] = field(default_factory=lambda: dict(DEFAULT_WINDOWS))
    session_gap_s: float = 1_800.0
    allowed_lateness_s: float = 600.0
    dedup_horizon_s: float = 3_600.0
    dedup_max_ids: int = 16
    max_traits: int = 16
    numeric_traits: tuple[str, ...] = ("age",)
    categorical_traits: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"country": ("US", "GB", "DE", "FR", "ES", "IT", "NL")}
    )
    # (event type, seconds): per-type windows that rules count over (``count(type, 30m)``).
    counted: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        # (name, span, width, bucket bound) tuples: the per-event loop unpacks these.
        object.__setattr__(
            self, "window_specs", tuple((n, s, w, s // w + 1) for n, (s, w) in self.windows.items())
        )
        typed: dict[str, list] = {}
        for event_type, seconds in sorted(set(self.counted)):
            name, span, width = typed_window(event_type, seconds)
            typed.setdefault(event_type, []).append((name, span, width, span // width + 1))
        object.__setattr__(self, "typed_specs", {kind: tuple(specs) for kind, specs in typed.items()})
        if self.allowed_lateness_s >= self.session_gap_s:
            raise ValueError("allowed_lateness_s must be shorter than session_gap_s")
        for name, (span, width) in self.windows.items():
            if span <= 0 or width <= 0 or span % width:
                raise ValueError(f"window {name!r}: span must be a positive multiple of the bucket width")


class UserFeatures:
    """Everything kept per user; bounded in size whatever the user sends.

    Size bound: at most ``span / width + 1`` buckets per window (73 with the
    defaults), ``dedup_max_ids`` remembered ids and ``max_traits`` traits.
    """

    __slots__ = (
        "first_ts", "last_ts", "events", "late", "duplicates", "custom",
        "page_views", "product_views", "searches", "cart_adds", "cart_removes",
        "checkouts", "purchases", "monetary", "last_purchase_ts",
        "cart_open", "cart_abandoned",
        "sessions", "session_start", "session_end", "closed_session_s",
        "device_events", "mobile_events", "scroll_sum", "scroll_n", "dwell_sum", "dwell_n",
        "windows", "recent_ids", "traits",
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
        self.windows: dict[str, dict[int, int]] = {}
        self.recent_ids: list[float] = []  # crc32 of an id, its event time, ...: oldest first
        self.traits: dict[str, Any] = {}

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
            self.sessions += 1
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
        elif kind == "search":
            self.searches += 1
        elif kind == "add_to_cart":
            self.cart_adds += 1
            self.cart_open += 1
        elif kind == "remove_from_cart":
            self.cart_removes += 1
            if self.cart_open:
                self.cart_open -= 1
        elif kind == "checkout":
            self.checkouts += 1
        elif kind == "purchase":
            self.purchases += 1
            self.monetary += event.value or 0.0
            self.cart_open = 0
            if self.last_purchase_ts is None or event.ts > self.last_purchase_ts:
                self.last_purchase_ts = event.ts
        elif kind != "identify":
            self.custom += 1

    def _count_context(self, event: ClickEvent) -> None:
        if event.device is not None:
            self.device_events += 1
            if event.device == "mobile":
                self.mobile_events += 1
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
        """Every feature as of event time ``now``, by its documented name."""
        sessions = self.sessions or 1
        features: dict[str, Any] = {
            f"activity_{name}": self.window_count(name, now, cfg.windows) for name in cfg.windows
        }
        features.update(
            events=self.events,
            sessions=self.sessions,
            mean_session_s=round(self.mean_session_s(), 3),
            product_views=self.product_views,
            cart_adds=self.cart_adds,
            purchases=self.purchases,
            cart_adds_without_purchase=self.cart_abandoned + self.cart_open,
            recency_days=None if self.last_purchase_ts is None else round(self.recency_days(now), 4),
            frequency=self.purchases,
            monetary=round(self.monetary, 2),
            avg_order_value=round(self.avg_order_value(), 2),
            conversion=round(self.purchases / sessions, 4),
            cart_abandon_rate=round(self.cart_abandon_rate(), 4),
            views_per_session=round(self.product_views / sessions, 3),
            search_share=round(self.search_share(), 4),
            mobile_share=None if not self.device_events else round(self.mobile_share(), 4),
            mean_scroll_depth=None if not self.scroll_n else round(self.scroll_sum / self.scroll_n, 4),
            mean_dwell_s=None if not self.dwell_n else round(self.dwell_sum / self.dwell_n / 1000.0, 3),
            late_events=self.late,
            duplicate_events=self.duplicates,
        )
        features.update(self.trait_features(cfg))
        return features

    def mean_session_s(self) -> float:
        if not self.sessions:
            return 0.0
        return (self.closed_session_s + self.session_end - self.session_start) / self.sessions

    def avg_order_value(self) -> float:
        return self.monetary / self.purchases if self.purchases else 0.0

    def cart_abandon_rate(self) -> float:
        return (self.cart_abandoned + self.cart_open) / self.cart_adds if self.cart_adds else 0.0

    def search_share(self) -> float:
        return self.searches / self.events if self.events else 0.0

    def mobile_share(self) -> float:
        return self.mobile_events / self.device_events if self.device_events else 0.0

    def trait_features(self, cfg: FeatureConfig) -> dict[str, float | None]:
        """Numeric traits as numbers (the segmenter scales them), categorical ones one-hot."""
        out: dict[str, float | None] = {}
        for name in cfg.numeric_traits:
            value = self.traits.get(name)
            out[f"trait_{name}"] = float(value) if type(value) in (int, float) else None
        for name, vocabulary in cfg.categorical_traits.items():
            value = self.traits.get(name)
            known = value in vocabulary
            for option in vocabulary:
                out[f"trait_{name}={option}"] = 1.0 if value == option else 0.0
            out[f"trait_{name}=other"] = 1.0 if value is not None and not known else 0.0
        return out

    # -- storage ------------------------------------------------------------

    def copy(self) -> UserFeatures:
        twin = UserFeatures.__new__(UserFeatures)
        for name, value in zip(_SCALARS, _read_scalars(self)):
            setattr(twin, name, value)
        twin.windows = {name: dict(buckets) for name, buckets in self.windows.items()}
        twin.recent_ids = list(self.recent_ids)
        twin.traits = dict(self.traits)
        return twin

    def to_record(self) -> list[Any]:
        """A compact JSON-ready list; ``from_record`` reads it back."""
        # Buckets as [index, count] pairs: orjson writes the tuples and dict() reads the
        # pairs back, without a Python-level loop either way.
        windows = {name: list(buckets.items()) for name, buckets in self.windows.items()}
        record = list(_read_scalars(self))
        if not self.events:  # the clocks are -inf until the first event; JSON has no -inf
            record = [_finite_or_none(value) for value in record]
        return [*record, windows, list(self.recent_ids), self.traits]

    @classmethod
    def from_record(cls, record: list[Any]) -> UserFeatures:
        user = cls.__new__(cls)
        *scalars, windows, recent, traits = record
        for name, value in zip(_SCALARS, scalars, strict=True):
            setattr(user, name, -math.inf if value is None and name in _CLOCKS else value)
        user.windows = {name: dict(_pairs(stored)) for name, stored in windows.items()}
        user.recent_ids = recent
        user.traits = traits
        return user


def typed_window(event_type: str, seconds: int) -> tuple[str, int, int]:
    """Name, span and bucket width of a per-type window: five buckets, or one if indivisible.

    >>> typed_window("add_to_cart", 1800)
    ('add_to_cart@1800', 1800, 360)
    """
    return f"{event_type}@{seconds}", seconds, seconds // 5 if seconds % 5 == 0 else seconds


_CLOCKS = frozenset({"first_ts", "last_ts", "session_start", "session_end"})


def _pairs(stored: list) -> Any:
    """Window buckets: ``[[index, count], ...]``, or the flat ``[index, count, ...]`` of state schema 1."""
    if stored and type(stored[0]) is int:
        return [[a, b] for a, b in zip(stored[::2], stored[1::2], strict=True)]
    return stored


def _finite_or_none(value: Any) -> Any:
    return None if value == -math.inf else value


_SCALARS = tuple(name for name in UserFeatures.__slots__ if name not in ("windows", "recent_ids", "traits"))
_read_scalars = attrgetter(*_SCALARS)
