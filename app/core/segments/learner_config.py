"""The learner's configuration and the drift event it reports.

>>> LearnerConfig(n_clusters="auto").k_max
12
>>> LearnerConfig(n_clusters="three")
Traceback (most recent call last):
...
ValueError: n_clusters must be "auto" or a number, got 'three'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from river import cluster

from app.core.events.decode import format_ts

AUTO = "auto"
MIXTURE = "Mixture"  # app/core/segments/mixture.py, followed online by app/core/segments/river_mixture.py


@dataclass(frozen=True)
class LearnerConfig:
    """The River clusterer, how k is chosen, and the learning and drift policy."""

    # "Mixture": per-segment spreads, atoms and missing values (app/core/segments/mixture.py), k by BIC;
    # or any river.cluster class exposing `centers` ("KMeans": k-means++, k by silhouette gain).
    algorithm: str = MIXTURE
    n_clusters: int | str = AUTO  # "auto": chosen from the data in [k_min, k_max]
    k_min: int = 2
    k_max: int = 12
    params: dict[str, Any] = field(default_factory=lambda: {"halflife": 0.01, "sigma": 1.0})
    seed: int = 42
    min_users: int = 50  # distinct users with a sample before the first fit
    warmup: int = 1_000  # refit as the users double, up to this many
    publish_every: int = 1_000
    refresh_window: int = 1_000
    # After the warm-up, refit on the latest users every this many samples (0: only on drift):
    # users gain evidence after the warm-up fit, and a refit lets k and centroids follow it.
    refit_every: int = 5_000
    drift_delta: float = 0.002
    drift_cooldown: int = 1_000
    lloyd_iterations: int = 25
    restarts: int = 10  # k-means++ seedings per k, in two seed groups (the stability check)
    drift_tolerance: float = 0.1  # refresh only if the fit got this much worse
    # A refit keeps the previous segments (refined on the new sample, same k) unless a fresh
    # fit is better by more than this: a share of the inertia (KMeans), or nats of
    # log-likelihood per fitted user (Mixture). Another local optimum that is no better
    # would re-cut the segments and move members for nothing.
    refit_continuity: float = 0.05
    match_distance: float = 2.0  # farthest old centroid (scaled units) a new one may inherit an id from
    max_missing: float = 0.5  # drop a feature missing for more of the users (app/core/segments/scaling.py)
    max_constant: float = 0.95  # drop a feature with one value for more of the users

    def __post_init__(self) -> None:
        if self.algorithm != MIXTURE and not hasattr(cluster, self.algorithm):
            raise ValueError(f"algorithm must be {MIXTURE!r} or a river.cluster class; river.cluster has no "
                             f"{self.algorithm!r}")  # fmt: skip
        if self.n_clusters != AUTO and (isinstance(self.n_clusters, bool) or not isinstance(self.n_clusters, int)):
            raise ValueError(f'n_clusters must be "auto" or a number, got {self.n_clusters!r}')
        if min(self.warmup, self.refresh_window, self.publish_every, self.min_users) < 1:
            raise ValueError("warmup, refresh_window, publish_every and min_users must be at least 1")
        if self.n_clusters != AUTO and self.n_clusters < 1:
            raise ValueError("n_clusters must be at least 1")
        if self.refit_continuity < 0:
            raise ValueError("refit_continuity must be at least 0")
        if not 1 <= self.k_min <= self.k_max:
            raise ValueError("k_min and k_max must satisfy 1 <= k_min <= k_max")


@dataclass(frozen=True)
class DriftEvent:
    """ADWIN saw the model fit get worse; the learner refreshed the model."""

    ts: float  # event time of the sample at which ADWIN detected the drift
    samples: int  # samples learned when it was detected
    previous_version: int
    version: int
    baseline_distance: float  # mean distance to the nearest reference centroid after the fit
    drifted_distance: float  # ADWIN's mean of that distance over its window when drift was seen
    signal: str = "distance_to_centroid"  # or "feature_mean:<feature>" (app/core/segments/fit_monitor.py)
    shift: float | None = None  # for a feature signal: how far its mean moved, in reference spreads

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": format_ts(self.ts),
            "samples": self.samples,
            "previous_version": self.previous_version,
            "version": self.version,
            "signal": self.signal,
            "baseline_distance": round(self.baseline_distance, 4),
            "drifted_distance": round(self.drifted_distance, 4),
            **({"shift": round(self.shift, 4)} if self.shift is not None else {}),
        }
