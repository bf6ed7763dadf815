"""The published segment model: what every worker predicts with.

A :class:`ModelSnapshot` is plain data (it travels as JSON on the ``segment-model``
topic): the features it reads, how to scale them, the centroids in scaled space
and the stable segment id and readable name of each centroid.

>>> snap = ModelSnapshot(version=3, features=("monetary", "mobile_share"), log_features=("monetary",),
...                      mean=(3.0, 0.5), std=(1.0, 0.2), centroids=((1.5, -0.2), (-1.0, 1.6)),
...                      segment_ids=("c1", "c2"), names=("high spend", "mobile"), samples=1000, ts=0.0)
>>> ModelSnapshot.from_dict(snap.to_dict()) == snap
True
>>> name_centroids(("monetary", "mobile_share"), [(1.5, -0.2), (-1.0, 1.6)])
['high spend', 'mobile · low spend']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

NEW_SEGMENT = "new"

# Feature -> words for a centroid well above / well below the population.
_DESCRIPTORS: dict[str, tuple[str, str]] = {
    "avg_order_value": ("big baskets", "small baskets"),
    "monetary": ("high spend", "low spend"),
    "frequency": ("frequent", "rare buyer"),
    "conversion": ("converts", "rarely buys"),
    "cart_abandon_rate": ("cart abandoner", "completes carts"),
    "cart_adds_without_purchase": ("abandoned carts", "few open carts"),
    "abandoned_per_session": ("cart abandoner", "completes carts"),
    "cart_adds_per_session": ("fills carts", "rarely adds to cart"),
    "views_per_session": ("heavy browser", "focused"),
    "product_views": ("heavy browser", "few views"),
    "search_share": ("searcher", "few searches"),
    "mobile_share": ("mobile", "desktop"),
    "mean_scroll_depth": ("deep reader", "skimmer"),
    "mean_dwell_s": ("lingers", "quick visits"),
    "sessions": ("regular", "occasional"),
    "mean_session_s": ("long sessions", "short sessions"),
    "recency_days": ("lapsed", "recent buyer"),
    "sessions_per_active_day": ("several visits a day", "one visit a day"),
    "median_session_gap_h": ("long gaps between visits", "returns quickly"),
    "order_value_std": ("varied order values", "steady order values"),
    "basket_size": ("many items per order", "single-item orders"),
    "view_to_cart": ("carts what it views", "views without carting"),
    "cart_to_purchase": ("buys what it carts", "leaves carts"),
    "checkout_to_purchase": ("completes checkout", "drops at checkout"),
    "hour_cos": ("night-time", "midday"),
    "hour_sin": ("mornings", "evenings"),
    "weekend_share": ("weekend shopper", "weekday shopper"),
    "desktop_share": ("desktop", "mobile"),
}
_NAME_THRESHOLD_Z = 0.5
# Scaled values are clipped to +-Z_CLIP: one extreme user must not own a segment's
# distance alone. Every reader of a snapshot scales through standardize(), so all agree.
Z_CLIP = 5.0
_NAME_WORDS = 3


@dataclass(frozen=True)
class ModelSnapshot:
    """One immutable version of the segment model."""

    version: int
    features: tuple[str, ...]
    log_features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    centroids: tuple[tuple[float, ...], ...]
    segment_ids: tuple[str, ...]
    names: tuple[str, ...]
    samples: int
    ts: float  # event time of the last sample it learned from
    rfm_edges: dict[str, tuple[float, ...]] | None = None  # app/core/segments/rfm.py; None until enough buyers
    # How k, the scaling and the features were chosen (app/core/segments/selection.py); None in
    # RFM-only snapshots and in snapshots published before selection existed.
    selection: dict[str, Any] | None = None
    # The mixture behind the centroids (app/core/segments/mixture.py: per-segment spreads, atoms,
    # weights); segments are then chosen by likelihood. None for distance models.
    mixture: dict[str, Any] | None = None

    @property
    def clustered(self) -> bool:
        """False for an RFM-only snapshot: cut points, but no cluster model yet."""
        return bool(self.centroids)

    def refits(self, before: ModelSnapshot | None) -> bool:
        """True when this snapshot's segments come from another fit than ``before``'s.

        A fit chooses the scaling, the features and the segments anew; the snapshots
        published between two fits only move the segments' means. After a new fit every
        member is re-decided (:meth:`app.core.engine.process.Engine.redecide`).

        >>> fit = ModelSnapshot(4, ("x",), (), (0.0,), (1.0,), ((0.0,), (2.0,)), ("c1", "c2"), ("a", "b"), 100, 0.0,
        ...                     selection={"k": 2, "fit_version": 4})
        >>> from dataclasses import replace
        >>> update = replace(fit, version=5)
        >>> fit.refits(None), update.refits(fit), replace(fit, version=6, selection={"fit_version": 6}).refits(update)
        (True, False, True)
        """
        if not self.clustered:
            return False
        if before is None or not before.clustered:
            return True
        return _fit_version(self) != _fit_version(before)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ModelSnapshot:
        return cls(
            version=int(doc["version"]),
            features=tuple(doc["features"]),
            log_features=tuple(doc["log_features"]),
            mean=tuple(doc["mean"]),
            std=tuple(doc["std"]),
            centroids=tuple(tuple(row) for row in doc["centroids"]),
            segment_ids=tuple(doc["segment_ids"]),
            names=tuple(doc["names"]),
            samples=int(doc["samples"]),
            ts=float(doc["ts"]),
            rfm_edges=None if doc.get("rfm_edges") is None else {k: tuple(v) for k, v in doc["rfm_edges"].items()},
            selection=doc.get("selection"),
            mixture=doc.get("mixture"),
        )

    def name_of(self, segment: str) -> str:
        if segment == NEW_SEGMENT:
            return "new"
        try:
            return self.names[self.segment_ids.index(segment)]
        except ValueError:
            return segment


def log_columns(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """log1p of the masked columns (last axis), in place; negatives count as 0.

    Learner, segmenter and fit monitor must transform features identically.

    >>> log_columns(np.array([[np.e - 1, 5.0]]), np.array([True, False])).tolist()
    [[1.0, 5.0]]
    """
    x[..., mask] = np.log1p(np.maximum(x[..., mask], 0.0))
    return x


def standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray, *, missing: float = 0.0) -> np.ndarray:
    """Scaled values ``(x - centre) / scale``, clipped to +-``Z_CLIP``.

    Unobserved (NaN) and non-finite values become ``missing``: 0, the population centre,
    for distance models; NaN for a mixture, which leaves them out of the likelihood.
    ``mean``/``std`` are a snapshot's centre and scale: the median and a robust
    spread since app/core/segments/scaling.py, plain moments in older snapshots.

    >>> standardize(np.array([4.0, np.nan, 99.0]), np.array([2.0, 1.0, 0.0]), np.array([2.0, 1.0, 1.0])).tolist()
    [1.0, 0.0, 5.0]
    """
    z = np.nan_to_num((x - mean) / std, nan=missing, posinf=missing, neginf=missing)
    return np.clip(z, -Z_CLIP, Z_CLIP, out=z)


def _fit_version(snapshot: ModelSnapshot) -> Any:
    # Snapshots from before fit_version existed all read as one fit: no re-decision for them.
    return (snapshot.selection or {}).get("fit_version")


def name_centroids(features: Sequence[str], centroids: Sequence[Sequence[float]]) -> list[str]:
    """Readable, unique names from centroids given as z-scores against the population."""
    names: list[str] = []
    for centroid in centroids:
        ranked = sorted(range(len(features)), key=lambda i: -abs(centroid[i]))
        words: list[str] = []
        for i in ranked:
            high, low = _DESCRIPTORS.get(features[i], (f"high {features[i]}", f"low {features[i]}"))
            word = high if centroid[i] > 0 else low
            if abs(centroid[i]) >= _NAME_THRESHOLD_Z and word not in words:
                words.append(word)
            if len(words) == _NAME_WORDS:
                break
        name = " · ".join(words) or "typical"
        base, n = name, 2
        while name in names:
            name, n = f"{base} ({n})", n + 1
        names.append(name)
    return names
