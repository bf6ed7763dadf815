"""The live segment dashboard: what it shows, gathered while the stream runs.

The worker (``agents/pages.py``) and ``segstream demo`` (``app/http/dashboard_server.py``)
each keep one :class:`DashboardFeed` and serve the same page and the same
``/dashboard/data`` document (its contract is in the README). The page
(``app/http/dashboard_assets/``) draws it in SVG with no library and polls every 2 s.

>>> feed = DashboardFeed("demo", catalog=lambda: [{"id": "s1", "kind": "cluster", "name": "buyers", "centroid": {}}],
...                      sizes=lambda: [(("cluster", "s1"), 3)], clock=iter([0.0, 2.0, 2.0]).__next__)
>>> feed.observe_batch(np.array([0.5, 1.5, 2.5, 3.5]))
>>> feed.sample()
>>> doc = feed.document()
>>> doc["segments"][0]["size"], doc["history"][0]["events_per_s"], doc["history"][0]["lag_p50_s"]
(3, 2.0, 2.0)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from app.core.events.decode import format_ts
from app.core.features import FeatureConfig, catalogue
from app.core.profiles.profile import RULE_PREFIX
from app.http.api import segment_catalog

ASSETS = Path(__file__).with_name("dashboard_assets")
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
_CHANGE_FIELDS = ("ts", "user_id", "kind", "change", "segment", "segment_name", "previous", "previous_name")
_MAX_LAG_VALUES = 20_000  # lag values kept per sample interval for its quantiles: a strided subset beyond this

SizeItems = Iterable[tuple[tuple[str, str], int]]


class DashboardFeed:
    """Segment sizes over time, throughput, lag, drifts and recent outputs, bounded in memory.

    ``catalog()`` gives the segments as :func:`app.http.api.segment_catalog` lists them
    and ``sizes()`` the users per ``(kind, segment)`` (:class:`app.core.segments.segment_sizes.SegmentSizes`).
    The stream calls the ``observe_*`` methods; a timer (or the demo's loop) calls
    :meth:`sample`. One lock: the demo serves the page from another thread.
    """

    def __init__(
        self,
        source: str,
        *,
        catalog: Callable[[], list[dict[str, Any]]],
        sizes: Callable[[], SizeItems],
        model: Callable[[], Any] = lambda: None,
        clock: Callable[[], float] = time.time,
        keep_points: int = 720,
        keep_recent: int = 50,
        keep_drifts: int = 50,
    ) -> None:
        self.source, self._catalog, self._sizes, self._model, self._clock = source, catalog, sizes, model, clock
        self._lock = threading.Lock()
        self._history: deque[dict[str, Any]] = deque(maxlen=keep_points)
        # Kept apart: a watermark that passes many deadlines at once must not push every change out.
        self._changes: deque[dict[str, Any]] = deque(maxlen=keep_recent)
        self._triggers: deque[dict[str, Any]] = deque(maxlen=keep_recent)
        self._drifts: deque[dict[str, Any]] = deque(maxlen=keep_drifts)
        self._events = 0
        self._lags: list[np.ndarray] = []
        self._since = clock()

    def observe_batch(self, lags: np.ndarray) -> None:
        """One batch of valid events, as their lags (processing time minus event time, seconds)."""
        with self._lock:
            self._events += len(lags)
            self._lags.append(lags)

    def observe_outputs(self, changes: Sequence[Mapping[str, Any]], triggers: Sequence[Mapping[str, Any]]) -> None:
        """Segment changes and triggers as published; only the latest few of each are kept."""
        keep = self._changes.maxlen or 0
        with self._lock:
            for change in changes[-keep:]:
                self._changes.append({"type": "change", **{key: change.get(key) for key in _CHANGE_FIELDS}})
            for trigger in triggers[-keep:]:
                self._triggers.append({"type": "trigger", "ts": trigger["ts"], "user_id": trigger["user_id"],
                                       "trigger": trigger["trigger"]})  # fmt: skip

    def observe_drift(self, drift: Mapping[str, Any]) -> None:
        """A drift event as the learner publishes it (``DriftEvent.to_dict``)."""
        with self._lock:
            self._drifts.append(dict(drift))

    def sample(self) -> None:
        """Close the current interval: one history point of throughput, lag and segment sizes."""
        now = self._clock()
        sizes = self._sizes_by_id()
        with self._lock:
            elapsed = max(now - self._since, 1e-9)
            lags = np.concatenate(self._lags) if self._lags else np.empty(0)
            if len(lags) > _MAX_LAG_VALUES:
                lags = lags[:: len(lags) // _MAX_LAG_VALUES + 1]
            p50, p95 = (float(q) for q in np.percentile(lags, (50, 95))) if len(lags) else (None, None)
            self._history.append({
                "t": now, "events_per_s": round(self._events / elapsed, 1),
                "lag_p50_s": _round(p50), "lag_p95_s": _round(p95), "sizes": sizes,
            })  # fmt: skip
            self._events, self._lags, self._since = 0, [], now

    def document(self) -> dict[str, Any]:
        """The ``/dashboard/data`` body."""
        sizes = self._sizes_by_id()
        segments = [{**segment, "size": sizes.get(segment["id"], 0)} for segment in self._catalog()]
        model = self._model()
        with self._lock:
            return {
                "source": self.source,
                "now": self._clock(),
                "model": None if model is None else {"version": model.version, "samples": model.samples,
                                                     "ts": format_ts(model.ts), "k": len(model.segment_ids),
                                                     "selection": model.selection,
                                                     "meanings": _meanings(model.features)},  # fmt: skip
                "segments": segments,
                "history": list(self._history),
                "drifts": list(self._drifts),
                # newest first by event time (ISO strings of one format sort as times)
                "recent": sorted([*self._changes, *self._triggers], key=itemgetter("ts"), reverse=True),
            }

    def _sizes_by_id(self) -> dict[str, int]:
        """Sizes keyed as the catalog names segments: ``c1``, ``rule:<name>``."""
        return {_segment_id(kind, segment): n for (kind, segment), n in self._sizes()}


def engine_feed(source: str, model: Callable[[], Any], rules: Mapping[str, str], sizes: Callable[[], SizeItems]
                ) -> DashboardFeed:  # fmt: skip
    """The feed of an engine whose current model ``model()`` gives: the worker's, or the demo's."""
    return DashboardFeed(source, catalog=lambda: segment_catalog(model(), rules), sizes=sizes, model=model)


def asset(name: str) -> tuple[bytes, str] | None:
    """A file of the page and its content type; None for anything else (no path outside ``ASSETS``)."""
    path = ASSETS / name
    if "/" in name or name.startswith(".") or path.suffix not in CONTENT_TYPES or not path.is_file():
        return None
    return path.read_bytes(), CONTENT_TYPES[path.suffix]


def _segment_id(kind: str, segment: str) -> str:
    return RULE_PREFIX + segment if kind == "rule" else segment


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@lru_cache(maxsize=1)
def _known():
    return catalogue(FeatureConfig())  # built once, not per poll: a catalogue compiles its readers


def _meanings(features) -> dict[str, str]:
    """What each model feature means, from the feature catalogue (the page's tooltips)."""
    known = _known()
    return {name: known[name].meaning for name in features if name in known}
