"""Local time of an event in the user's time zone, to the quarter hour.

Every UTC offset in use is a multiple of 15 minutes, so the local hour, weekday
and date of an event depend only on its quarter hour and the zone: one cached
lookup per (quarter, zone) instead of a ``datetime`` per event.

>>> local_time(1_767_225_600.0, "Europe/Paris", "UTC")  # 2026-01-01T00:00Z is 01:00 on a Thursday there
LocalTime(quarter=4, weekday=3, day=739617)
>>> local_time(1_767_225_600.0, "Not/AZone", "UTC").quarter  # an unknown zone falls back to the default
0
"""

from __future__ import annotations

import math
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
QUARTERS_PER_DAY = 96

# The hour of day as a point on a circle, in thousandths (integers, so that sums kept
# in the user's state are exact whatever the order of folding and encoding).
HOUR_COS = tuple(round(1000 * math.cos(2 * math.pi * (q + 0.5) / QUARTERS_PER_DAY)) for q in range(QUARTERS_PER_DAY))
HOUR_SIN = tuple(round(1000 * math.sin(2 * math.pi * (q + 0.5) / QUARTERS_PER_DAY)) for q in range(QUARTERS_PER_DAY))


class LocalTime(NamedTuple):
    quarter: int  # quarter hour of the local day, 0 to 95
    weekday: int  # 0 is Monday
    day: int  # proleptic Gregorian ordinal of the local date

    @property
    def hour(self) -> int:
        return self.quarter // 4


# (quarter since the epoch, zone) -> (HOUR_COS, HOUR_SIN, local day, is weekend): what the fold
# adds per event, in a plain dict because a cached function call costs more than the rest.
FOLD_CACHE: dict[tuple[int, str], tuple[int, int, int, bool]] = {}
_MAXFOLD_CACHE = 65_536


def fold_facts(key: tuple[int, str], default: str) -> tuple[int, int, int, bool]:
    """What an event in quarter ``key[0]`` of zone ``key[1]`` adds to the local-time sums.

    >>> fold_facts((1_963_584, "UTC"), "UTC")  # 2026-01-01 00:00 UTC, a Thursday
    (999, 33, 739617, False)
    """
    facts = FOLD_CACHE.get(key)
    if facts is None:
        local = _local_quarter(key[0], key[1], default)
        facts = (HOUR_COS[local.quarter], HOUR_SIN[local.quarter], local.day, local.weekday >= 5)
        if len(FOLD_CACHE) >= _MAXFOLD_CACHE:
            FOLD_CACHE.clear()
        FOLD_CACHE[key] = facts
    return facts


def local_time(ts: float, tz_name: Any, default: str) -> LocalTime:
    """The local quarter hour, weekday and date of ``ts`` in ``tz_name`` (or ``default``)."""
    return _local_quarter(int(ts // 900), tz_name if isinstance(tz_name, str) else default, default)


@lru_cache(maxsize=16_384)
def _local_quarter(quarter: int, tz_name: str, default: str) -> LocalTime:
    local = datetime.fromtimestamp(quarter * 900, zone(tz_name, default))
    return LocalTime(local.hour * 4 + local.minute // 15, local.weekday(), local.toordinal())


@lru_cache(maxsize=1024)
def zone(name: str, default: str) -> ZoneInfo:
    """The IANA zone ``name``, or ``default`` when it is not one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)
