"""The online learner: a River scaler + clusterer pipeline watched by ADWIN.

One learner holds the single global model. It learns from sampled user feature
vectors, publishes a :class:`~app.core.model.ModelSnapshot` every
``publish_every`` samples, and watches the distance of each sample to its
nearest centroid with ADWIN. Drift policy: when ADWIN detects that this
distance grew by more than ``drift_tolerance`` over its best level since the last
fit, the learner keeps learning online while it collects ``refresh_window`` fresh
samples, then refits on exactly those, matches the new centroids to the old ones
(Hungarian assignment on centroid distance) so segment ids survive, bumps the
version and reports a :class:`DriftEvent`. Detections within ``drift_cooldown``
samples of the last refit are ignored.

The first model comes from the first ``warmup`` samples: River's KMeans starts
from random centres and can leave some dead, so the learner seeds it with
k-means++ and a few Lloyd steps on the warm-up sample, then learns online.

>>> import random
>>> rng = random.Random(1)
>>> learner = Learner(LearnerConfig(warmup=200, publish_every=100, n_clusters=2),
...                   features=("x", "y"), log_features=())
>>> outputs = [out for i in range(400)
...            for out in learner.learn([rng.gauss(5.0 * (i % 2), 0.3), rng.gauss(0, 0.3)], ts=float(i))]
>>> [type(out).__name__ for out in outputs]
['ModelSnapshot', 'ModelSnapshot', 'ModelSnapshot']
>>> snap = outputs[-1]
>>> snap.version, snap.segment_ids, sorted(round(c[0]) for c in snap.centroids)
(3, ('c1', 'c2'), [-1, 1])
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river import cluster, preprocessing
from scipy.optimize import linear_sum_assignment

from app.core.events import format_ts
from app.core.fit_monitor import FitMonitor
from app.core.model import ModelSnapshot, log_columns, name_centroids, standardize
from app.core.rfm import RfmQuintiles


@dataclass(frozen=True)
class LearnerConfig:
    """The River clusterer and the learning and drift policy."""

    algorithm: str = "KMeans"  # any river.cluster class exposing `centers`
    n_clusters: int = 5
    params: dict[str, Any] = field(default_factory=lambda: {"halflife": 0.01, "sigma": 1.0})
    seed: int = 42
    warmup: int = 1_000
    publish_every: int = 1_000
    refresh_window: int = 1_000
    drift_delta: float = 0.002
    drift_cooldown: int = 1_000
    lloyd_iterations: int = 25
    restarts: int = 10  # k-means++ seedings tried; the lowest inertia wins
    drift_tolerance: float = 0.1  # refresh only if the fit got this much worse

    def __post_init__(self) -> None:
        if not hasattr(cluster, self.algorithm):
            raise ValueError(f"river.cluster has no {self.algorithm!r}")
        if min(self.warmup, self.refresh_window, self.publish_every, self.n_clusters) < 1:
            raise ValueError("warmup, refresh_window, publish_every and n_clusters must be at least 1")


@dataclass(frozen=True)
class DriftEvent:
    """ADWIN saw the model fit get worse; the learner refreshed the model."""

    ts: float  # event time of the sample at which ADWIN detected the drift
    samples: int  # samples learned when it was detected
    previous_version: int
    version: int
    baseline_distance: float  # best mean distance to the nearest centroid before the drift
    drifted_distance: float  # ADWIN's mean of the recent window when it fired

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": format_ts(self.ts),
            "samples": self.samples,
            "previous_version": self.previous_version,
            "version": self.version,
            "signal": "distance_to_centroid",
            "baseline_distance": round(self.baseline_distance, 4),
            "drifted_distance": round(self.drifted_distance, 4),
        }


class Learner:
    """Learns one global segment model from sampled feature vectors."""

    def __init__(self, config: LearnerConfig, *, features: Sequence[str], log_features: Sequence[str]) -> None:
        self.config = config
        self.features = tuple(features)
        self.log_features = tuple(name for name in log_features if name in self.features)
        self._log_mask = np.array([name in self.log_features for name in self.features])
        self._rng = np.random.default_rng(config.seed)
        self._recent: deque[np.ndarray] = deque(maxlen=max(config.refresh_window, config.warmup))
        self._samples = 0
        self._since_publish = 0
        self._version = 0
        self._ids: list[str] = []
        self._scaler: preprocessing.StandardScaler | None = None
        self._clusterer: Any = None
        self._monitor: FitMonitor | None = None  # set by the first fit
        self._detected: tuple[float, int, float, float] | None = None  # ts, samples, baseline, distance
        self._last_ts: float | None = None
        self.rfm = RfmQuintiles()
        self.snapshot: ModelSnapshot | None = None

    @property
    def samples(self) -> int:
        return self._samples

    def learn_rfm(self, recency_days: float, frequency: float, monetary: float) -> None:
        """One buyer's RFM measures; the next published snapshot carries the new cut points."""
        self.rfm.learn(recency_days=recency_days, frequency=frequency, monetary=monetary)

    def learn(self, vector: Sequence[float], ts: float) -> list[ModelSnapshot | DriftEvent]:
        """Learn one raw feature vector (config feature order, NaN = unobserved)."""
        x = self._transform(vector)
        self._recent.append(x)
        self._samples += 1
        self._last_ts = ts
        if self._clusterer is None:
            # Fit at the warm-up size, and again every warm-up samples until a fit finds clusters.
            if self._samples % self.config.warmup or not self._refit(np.array(self._recent)):
                return []
            return [self._publish(ts)]
        sample = self._as_dict(x)
        self._scaler.learn_one(sample)
        scaled = self._scaler.transform_one(sample)
        self._clusterer.learn_one(scaled)
        outputs: list[ModelSnapshot | DriftEvent] = []
        if self._detected is None and self._monitor.observe(x):
            self._detected = (ts, self._samples, self._monitor.baseline, self._monitor.current)
        # Refit once refresh_window samples, the detecting one included, came after the drift.
        if self._detected is not None and self._samples - self._detected[1] + 1 >= self.config.refresh_window:
            outputs.extend(self._refresh())
        else:
            self._since_publish += 1
            if self._since_publish >= self.config.publish_every:
                outputs.append(self._publish(ts))
        return outputs

    # -- internals ------------------------------------------------------------

    def _transform(self, vector: Sequence[float]) -> np.ndarray:
        return log_columns(np.asarray(vector, dtype=np.float64), self._log_mask)

    def _as_dict(self, x: np.ndarray) -> dict[str, float]:
        # Unobserved features stay out of the dict: River's KMeans reads them as 0,
        # the population mean in scaled space.
        return {name: value for name, value in zip(self.features, x.tolist(), strict=True) if not math.isnan(value)}

    def _refit(self, data: np.ndarray) -> bool:
        """A fresh scaler and clusterer from ``data`` (KMeans seeded by k-means++).

        Returns False, keeping the current model, when the clusterer found no clusters.
        """
        scaler = preprocessing.StandardScaler()
        for row in data:
            scaler.learn_one(self._as_dict(row))
        z = self._scale_matrix(data, scaler)
        clusterer = getattr(cluster, self.config.algorithm)(**self._clusterer_params())
        if isinstance(clusterer, cluster.KMeans):
            centers = _best_kmeans(z, self.config, self._rng)
            clusterer.centers = {i: _center_dict(self.features, center) for i, center in enumerate(centers)}
        else:
            for row in z:
                clusterer.learn_one(dict(zip(self.features, row.tolist(), strict=True)))
        if not clusterer.centers:
            return False
        self._scaler, self._clusterer = scaler, clusterer
        self._monitor = FitMonitor(
            *self._moments(scaler),
            self._centroids(),
            cooldown=self.config.drift_cooldown,
            tolerance=self.config.drift_tolerance,
            delta=self.config.drift_delta,
        )
        self._name_new_centers(len(clusterer.centers))
        return True

    def _name_new_centers(self, count: int) -> None:
        known = len(self._ids)
        self._ids.extend(f"c{n}" for n in range(known + 1, count + 1))

    def _clusterer_params(self) -> dict[str, Any]:
        params = dict(self.config.params)
        if self.config.algorithm == "KMeans":
            params.setdefault("n_clusters", self.config.n_clusters)
            params.setdefault("seed", self.config.seed)
        return params

    def _scale_matrix(self, data: np.ndarray, scaler: preprocessing.StandardScaler) -> np.ndarray:
        return standardize(data, *self._moments(scaler))


    def _moments(self, scaler: preprocessing.StandardScaler) -> tuple[np.ndarray, np.ndarray]:
        mean = np.array([scaler.means.get(name, 0.0) for name in self.features])
        std = np.sqrt(np.array([scaler.vars.get(name, 0.0) for name in self.features]))
        return mean, np.where(std > 1e-9, std, 1.0)

    def _centroids(self) -> np.ndarray:
        return np.array(
            [[self._clusterer.centers[i].get(name, 0.0) for name in self.features] for i in sorted(self._clusterer.centers)]
        )

    def _refresh(self) -> list[ModelSnapshot | DriftEvent]:
        detected_ts, detected_at, baseline, drifted = self._detected
        old_mean, old_std = self._moments(self._scaler)
        old_raw = self._centroids() * old_std + old_mean
        self._detected = None
        if not self._refit(np.array(self._recent)[-self.config.refresh_window :]):
            return []  # keep the current model; ADWIN keeps watching it
        new_mean, new_std = self._moments(self._scaler)
        old_in_new = (old_raw - new_mean) / new_std
        new = self._centroids()
        cost = np.linalg.norm(new[:, None, :] - old_in_new[None, :, :], axis=2)
        rows, cols = linear_sum_assignment(cost)
        old_ids = list(self._ids)
        matched = dict(zip(rows.tolist(), cols.tolist(), strict=True))
        fresh = (f"c{n}" for n in range(len(old_ids) + 1, len(old_ids) + len(new) + 1))
        self._ids = [old_ids[matched[i]] if i in matched else next(fresh) for i in range(len(new))]
        previous = self._version
        snapshot = self._publish(self._last_ts)
        return [DriftEvent(detected_ts, detected_at, previous, snapshot.version, baseline, drifted), snapshot]

    def _publish(self, ts: float) -> ModelSnapshot:
        self._version += 1
        self._since_publish = 0
        mean, std = self._moments(self._scaler)
        centroids = self._centroids()
        self._name_new_centers(len(centroids))
        self.snapshot = ModelSnapshot(
            version=self._version,
            features=self.features,
            log_features=self.log_features,
            mean=tuple(mean.tolist()),
            std=tuple(std.tolist()),
            centroids=tuple(tuple(row) for row in centroids.tolist()),
            segment_ids=tuple(self._ids[: len(centroids)]),
            names=tuple(name_centroids(self.features, centroids.tolist())),
            samples=self._samples,
            ts=ts,
            rfm_edges=self.rfm.edges(),
        )
        return self.snapshot


def _center_dict(features: Sequence[str], center: np.ndarray) -> defaultdict[str, float]:
    out: defaultdict[str, float] = defaultdict(float)
    out.update(zip(features, center.tolist(), strict=True))
    return out


def _best_kmeans(z: np.ndarray, config: LearnerConfig, rng: np.random.Generator) -> np.ndarray:
    """The lowest-inertia centroids of ``config.restarts`` k-means++ runs."""
    best, best_inertia = None, np.inf
    for _ in range(max(1, config.restarts)):
        centers = _kmeans(z, config.n_clusters, rng, config.lloyd_iterations)
        inertia = ((z[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2).min(axis=1).sum()
        if inertia < best_inertia:
            best, best_inertia = centers, inertia
    return best


def _kmeans(z: np.ndarray, k: int, rng: np.random.Generator, iterations: int) -> np.ndarray:
    """k-means++ seeding followed by Lloyd iterations; deterministic for a given rng."""
    centers = [z[rng.integers(len(z))]]
    for _ in range(1, k):
        d2 = np.min(((z[:, None, :] - np.array(centers)[None, :, :]) ** 2).sum(axis=2), axis=1)
        total = d2.sum()
        probs = d2 / total if total > 0 else np.full(len(z), 1.0 / len(z))
        centers.append(z[rng.choice(len(z), p=probs)])
    c = np.array(centers)
    for _ in range(iterations):
        labels = ((z[:, None, :] - c[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        for j in range(k):
            members = z[labels == j]
            if len(members):
                c[j] = members.mean(axis=0)
    return c
