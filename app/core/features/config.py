"""How per-user features are kept: windows, sessions, lateness, deduplication, traits, time zone.

>>> FeatureConfig().window_specs[0]
('5m', 300, 60, 6)
>>> FeatureConfig(windows={"10m": (600, 70)})
Traceback (most recent call last):
...
ValueError: window '10m': span must be a positive multiple of the bucket width
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Window name -> (span, bucket width) in seconds. A window's count includes the
# whole oldest bucket it overlaps, so its effective span is span .. span + width.
DEFAULT_WINDOWS: dict[str, tuple[int, int]] = {
    "5m": (300, 60),
    "1h": (3_600, 300),
    "24h": (86_400, 3_600),
    "7d": (604_800, 21_600),
}

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
    # Local time (time of day, weekday, active days) is in the user's trait ``timezone``,
    # else this zone; the engine sets it from ``[rules] default_timezone``.
    default_timezone: str = "UTC"

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


def typed_window(event_type: str, seconds: int) -> tuple[str, int, int]:
    """Name, span and bucket width of a per-type window: five buckets, or one if indivisible.

    >>> typed_window("add_to_cart", 1800)
    ('add_to_cart@1800', 1800, 360)
    """
    return f"{event_type}@{seconds}", seconds, seconds // 5 if seconds % 5 == 0 else seconds
