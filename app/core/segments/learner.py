"""The online learner: segments and their number from the data, robust scaling, online updates, ADWIN.

One learner holds the single global model. It learns from sampled user feature
vectors and keeps the latest vector of each of the most recent users (at most
``max(warmup, refresh_window)``): a fit sample has one row per user, so a heavy
user counts once.

Fits. The first fit comes once ``min_users`` distinct users have a sample; the
model is refitted each time that number doubles, until ``warmup`` users (so a
small site gets a model early, and a big one a better one soon after). A fit
chooses the scaling and the features (:mod:`app.core.segments.scaling`), then the model:

- ``algorithm="Mixture"`` (the default): a mixture with per-segment spreads, point
  masses and missing values (:mod:`app.core.segments.mixture`), grown top-down with k by BIC
  (``n_clusters="auto"``) or at a fixed k. Between fits, River's KMeans rule moves the
  mean of the segment the mixture assigns each sample to
  (:class:`~app.core.segments.river_mixture.MixtureKMeans`);
- ``algorithm="KMeans"``: k-means, k by :mod:`app.core.segments.selection` or fixed, seeding
  River's KMeans, which then learns online;
- any other River clusterer learns online from the first fit on.

Between fits the model learns from each sample scaled with the frozen scaling, and a
snapshot is published every ``publish_every`` samples. After the warm-up the model is
refitted on the latest users every ``refit_every`` samples, as they gain evidence.

Drift: ADWIN watches each sample's distance to the model of the last warm-up or drift
fit, and each feature's mean (:class:`~app.core.segments.fit_monitor.FitMonitor`; periodic refits
keep that reference, so they cannot hide a population that moved). When the fit got
more than ``drift_tolerance`` worse, or a feature's mean moved, the learner collects
``refresh_window`` fresh samples, refits on the latest users (k chosen again), bumps the
version and reports a :class:`DriftEvent`. Detections within ``drift_cooldown`` samples
of a fit are ignored.

Refits keep the segments they can. A mixture refit at the same k is continued by EM from
the current model's labels, and kept unless a fresh fit is better by more than
``refit_continuity`` per user; k-means is continued by Lloyd steps from the previous
centroids under the same rule (:func:`~app.core.segments.selection.continue_fit`).

Segment ids. After a refit, each new segment inherits the id of the old segment it
shares the most fit-sample users with (Hungarian assignment on the Jaccard index, at
least ``MATCH_OVERLAP``); k-means centroids are matched on centroid distance in the new
scaling instead, refused beyond ``match_distance``. Any other segment gets a new id, an
id is never reused, and segments without a match are retired (the segmenter moves
their members, with reason ``segment_retired``).

RFM cut points do not wait for clusters: :meth:`Learner.learn_rfm` publishes as soon as
they exist and every ``publish_every`` buyers' samples after, an RFM-only snapshot (no
centroids) while there is no cluster model.

>>> import random
>>> rng = random.Random(1)
>>> learner = Learner(LearnerConfig(n_clusters="auto", warmup=200, publish_every=100, min_users=50), features=("x", "y"))
>>> outputs = [out for i in range(400)
...            for out in learner.learn([rng.gauss(5.0 * (i % 2), 0.3), 1.0], ts=float(i))]
>>> [snap.samples for snap in outputs]
[50, 100, 200, 300, 400]
>>> snap = outputs[-1]
>>> snap.version, sorted(snap.segment_ids), snap.selection["k"], snap.selection["method"], snap.features
(5, ['c1', 'c2'], 2, 'auto', ('x',))
>>> snap.selection["dropped"]
{'y': 'constant: 100% of users have 1'}
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from river import cluster
from scipy.optimize import linear_sum_assignment

from app.core.segments import mixture
from app.core.segments.fit_monitor import FitMonitor
from app.core.segments.learner_config import AUTO, MIXTURE, DriftEvent, LearnerConfig
from app.core.segments.model import ModelSnapshot, name_centroids
from app.core.segments.rfm import RfmQuintiles
from app.core.segments.river_mixture import MixtureKMeans
from app.core.segments.scaling import Scaling, fit_scaling
from app.core.segments.selection import (
    SILHOUETTE_ROWS,
    pairwise_distances,
    adjusted_rand,
    continue_fit,
    davies_bouldin,
    fixed_k,
    k_range,
    select_k,
    silhouette,
)

__all__ = ["AUTO", "DriftEvent", "Learner", "LearnerConfig"]

MATCH_OVERLAP = 0.5  # Jaccard index of members a new mixture segment needs to keep an old id

class Learner:
    """Learns one global segment model from sampled feature vectors.

    ``features`` are the candidate features, in the order of the vectors given to
    :meth:`learn`; ``log_features`` are always log1p'ed (others when skewed).
    ``first_version`` is the version to count on from (a restart without a checkpoint).
    """

    def __init__(
        self, config: LearnerConfig, *, features: Sequence[str], log_features: Sequence[str] = (),
        first_version: int = 0,
    ) -> None:  # fmt: skip
        self.config = config
        self.features = tuple(features)
        self.log_features = tuple(name for name in log_features if name in self.features)
        self._rng = np.random.default_rng(config.seed)
        self._users: OrderedDict[Hashable, np.ndarray] = OrderedDict()  # latest raw vector, oldest first
        self._capacity = max(config.refresh_window, config.warmup)
        self._seen = 0  # distinct users (keys) ever sampled
        self._next_fit: int | None = config.min_users  # users seen at the next warm-up fit
        self._warm_until = float("inf")  # samples by which the warm-up ends (set by its first fit)
        self._samples = 0
        self._since_publish = 0
        self._fitted_at = 0  # samples at the latest fit
        self._version = first_version
        self._ids: list[str] = []
        self._next_id = 1  # ids are never reused
        self._scaling: Scaling | None = None
        self._selection: dict[str, Any] | None = None
        self._clusterer: Any = None
        # The drift monitor and the scaling it reads with: renewed by warm-up and drift fits, not
        # by periodic ones, which follow users gaining evidence, not a population that moved.
        self._monitor: FitMonitor | None = None
        self._monitor_scaling: Scaling | None = None
        # ts, samples, baseline and current distance, the signal, a feature's shift
        self._detected: tuple[float, int, float, float, str, float | None] | None = None
        self._last_ts: float | None = None
        self._rfm_published = -1  # RFM samples at the last RFM-only snapshot
        self.rfm = RfmQuintiles()
        self.snapshot: ModelSnapshot | None = None

    @property
    def samples(self) -> int:
        return self._samples

    def resumes(self, config: LearnerConfig, features: Sequence[str]) -> bool:
        """Whether this learner (a checkpoint) may go on under ``config`` and ``features``.

        A checkpoint carries the configuration it learned under; resuming it under other
        settings would silently keep the old ones.
        """
        return self.config == config and self.features == tuple(features)

    def forget(self, user: Hashable) -> None:
        """Erasure: drop the user's sample (fitted models keep no per-user data)."""
        self._users.pop(user, None)

    def learn_rfm(self, recency_days: float, frequency: float, monetary: float, ts: float = 0.0) -> list[ModelSnapshot]:
        """One buyer's RFM measures; a snapshot when new cut points are due (RFM-only without clusters)."""
        self.rfm.learn(recency_days=recency_days, frequency=frequency, monetary=monetary)
        self._last_ts = ts if self._last_ts is None else max(self._last_ts, ts)
        count = self.rfm.samples
        waited = count - self._rfm_published >= self.config.publish_every or self._rfm_published < 0
        if not waited or self.rfm.edges() is None:
            return []
        # The first cut points, then fresh ones every publish_every buyers' samples, with or without clusters.
        self._rfm_published = count
        return [self._publish(self._last_ts)]

    def learn(self, vector: Sequence[float], ts: float, user: Hashable | None = None) -> list[ModelSnapshot | DriftEvent]:
        """Learn one raw feature vector (candidate feature order, NaN = unobserved) of ``user``.

        Without ``user`` every sample counts as a user of its own.
        """
        x = np.array(vector, dtype=np.float64)
        self._remember(self._samples if user is None else user, x)
        self._samples += 1
        self._last_ts = ts
        if self._next_fit is not None and (self._seen >= self._next_fit or self._samples >= self._warm_until):
            return self._warm_fit(ts)
        if self._clusterer is None:
            return []
        outputs: list[ModelSnapshot | DriftEvent] = []
        missing = np.nan if isinstance(self._clusterer, MixtureKMeans) else 0.0
        self._clusterer.learn_one(self._as_dict(self._scaling.transform(x, missing=missing)))
        if self._detected is None and self._monitor.observe(self._monitor_scaling.prepare(x)):
            monitor = self._monitor
            self._detected = (ts, self._samples, monitor.baseline, monitor.current, monitor.signal, monitor.shift)
        # Refit once refresh_window samples, the detecting one included, came after the drift.
        if self._detected is not None and self._samples - self._detected[1] + 1 >= self.config.refresh_window:
            outputs.extend(self._refresh())
        elif self._refit_due() and self._refit(np.array(list(self._users.values())), watch=False):
            outputs.append(self._publish(ts))
        else:
            self._since_publish += 1
            if self._since_publish >= self.config.publish_every:
                outputs.append(self._publish(ts))
        return outputs

    # -- internals ------------------------------------------------------------

    def _remember(self, key: Hashable, x: np.ndarray) -> None:
        if key in self._users:
            self._users.move_to_end(key)
        else:
            self._seen += 1
            if len(self._users) >= self._capacity:
                self._users.popitem(last=False)
        self._users[key] = x

    def _warm_fit(self, ts: float) -> list[ModelSnapshot]:
        """A fit at a warm-up size; the next comes when the users have doubled.

        The warm-up ends at ``warmup`` users, or ``warmup`` samples after its first fit,
        whichever comes first: a stream with few users must not keep moving the drift
        monitor's reference until its last user shows up.
        """
        seen, warmup = self._seen, self.config.warmup
        fitted = self._refit(np.array(list(self._users.values())))
        if fitted and self._warm_until == float("inf"):
            self._warm_until = self._samples + warmup
        if seen >= warmup or self._samples >= self._warm_until:
            self._next_fit = None if fitted else seen + warmup  # retry later while nothing fits
        else:
            self._next_fit = min(2 * seen, warmup)
        return [self._publish(ts)] if fitted else []

    def _refit_due(self) -> bool:
        every = self.config.refit_every
        return every > 0 and self._next_fit is None and self._samples - self._fitted_at >= every

    def _refit(self, data: np.ndarray, *, watch: bool = True) -> bool:
        """Scaling, features, k and centroids from ``data``; ids matched to the previous fit.

        ``watch``: the drift monitor takes this fit as its new reference.

        Returns False, keeping the current model, when no feature or no cluster is usable.
        """
        cfg = self.config
        scaling = fit_scaling(data, self.features, always_log=self.log_features,
                              max_missing=cfg.max_missing, max_constant=cfg.max_constant)  # fmt: skip
        if not scaling.features:
            return False
        if cfg.algorithm == MIXTURE:
            clusterer, selection = self._fit_mixture(data, scaling)
        else:
            z = scaling.transform(data)
            centers, selection = self._cluster(z)
            if self._clusterer is not None and cfg.algorithm == "KMeans":
                previous = self._previous_centroids(scaling)
                centers, continued = continue_fit(z, centers, previous, tolerance=cfg.refit_continuity,
                                                  iterations=cfg.lloyd_iterations)  # fmt: skip
                selection = {**selection, "continued": continued}
            clusterer = self._river(centers, scaling.features, z)
        centroids = _centroids(clusterer, scaling.features)
        if not len(centroids):
            return False
        if isinstance(clusterer, MixtureKMeans) and isinstance(self._clusterer, MixtureKMeans):
            self._ids = self._match_members(data, clusterer, scaling)
        else:
            previous = self._raw_centroids() if self._clusterer is not None else None
            self._ids = self._match(previous, centroids, scaling)
        self._scaling, self._clusterer = scaling, clusterer
        self._fitted_at = self._samples
        # fit_version: the version this fit is first published as (the next), so that every
        # snapshot of one fit names it and a worker can tell a new fit from an online update.
        self._selection = {**selection, "k": len(centroids), "features": list(scaling.features),
                           "dropped": dict(scaling.dropped), "fit_version": self._version + 1}  # fmt: skip
        if watch or self._monitor is None:
            self._detected = None
            self._monitor_scaling = scaling
            self._monitor = FitMonitor(scaling.centre, scaling.scale, centroids, cooldown=cfg.drift_cooldown,
                                       tolerance=cfg.drift_tolerance, delta=cfg.drift_delta,
                                       features=scaling.features)  # fmt: skip
        return True

    def _cluster(self, z: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        cfg = self.config
        if cfg.algorithm != "KMeans":  # another River clusterer finds its own clusters
            return np.empty((0, z.shape[1])), {"method": "online"}
        if cfg.n_clusters == AUTO:
            return select_k(z, k_min=cfg.k_min, k_max=cfg.k_max, rng=self._rng,
                            restarts=cfg.restarts, iterations=cfg.lloyd_iterations)  # fmt: skip
        return fixed_k(z, cfg.n_clusters, rng=self._rng, restarts=cfg.restarts, iterations=cfg.lloyd_iterations)

    def _fit_mixture(self, data: np.ndarray, scaling: Scaling) -> tuple[MixtureKMeans, dict[str, Any]]:
        """A mixture (:mod:`.mixture`) on ``data``, k by BIC or fixed; continued from the last when as good."""
        cfg = self.config
        z = scaling.transform(data, missing=np.nan)
        auto = cfg.n_clusters == AUTO
        low, high = k_range(z, cfg.k_min, cfg.k_max) if auto else k_range(z, cfg.n_clusters, cfg.n_clusters)
        fits = mixture.grow(z, k_max=high, k_min=low, rng=self._rng, stop_early=auto)
        k = mixture.choose_k(fits, k_min=low) if auto else max(fits)
        fit, continued = fits[k], False
        previous = self._clusterer
        if isinstance(previous, MixtureKMeans) and previous.mixture.k == k:
            labels = previous.current().predict(self._scaling.transform(data, missing=np.nan))
            kept = mixture.refine(z, labels, k, steps=mixture.SPLIT_STEPS)
            if fit.log_likelihood - kept.log_likelihood <= cfg.refit_continuity * len(z):
                fit, continued = kept, True
        selection = _mixture_scores(np.nan_to_num(z), fits, fit, _resampled_labels(z, fit, self._rng), auto)
        selection["continued"] = continued
        halflife = cfg.params.get("halflife", 0.01)
        model = fit.mixture.without_empty(len(z))
        return MixtureKMeans(model, scaling.features, halflife=halflife, seed=cfg.seed), selection

    def _river(self, centers: np.ndarray, features: Sequence[str], z: np.ndarray) -> Any:
        """The River clusterer: KMeans seeded with ``centers``; others learn ``z`` online."""
        params = dict(self.config.params)
        if self.config.algorithm == "KMeans":
            params.update(n_clusters=len(centers), seed=self.config.seed)
        clusterer = getattr(cluster, self.config.algorithm)(**params)
        if isinstance(clusterer, cluster.KMeans):
            clusterer.centers = {i: _center_dict(features, center) for i, center in enumerate(centers)}
        else:
            for row in z:
                clusterer.learn_one(dict(zip(features, row.tolist(), strict=True)))
        return clusterer

    def _as_dict(self, z: np.ndarray) -> dict[str, float]:
        return dict(zip(self._scaling.features, z.tolist(), strict=True))

    def _raw_centroids(self) -> dict[str, np.ndarray]:
        """The current centroids per feature, unscaled and un-logged: comparable across scalings."""
        s = self._scaling
        raw = _centroids(self._clusterer, s.features) * s.scale + s.centre
        logged = [name in s.log_features for name in s.features]
        raw[:, logged] = np.expm1(raw[:, logged])
        return {name: raw[:, j] for j, name in enumerate(s.features)}

    def _previous_centroids(self, scaling: Scaling, previous: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The current centroids in ``scaling`` (a feature they lack sits at its centre, 0)."""
        previous = self._raw_centroids() if previous is None else previous
        old = np.full((len(next(iter(previous.values()))), len(self.features)), np.nan)
        for name, values in previous.items():
            old[:, self.features.index(name)] = values
        return scaling.transform(old)

    def _match(self, previous: dict[str, np.ndarray] | None, new: np.ndarray, scaling: Scaling) -> list[str]:
        """Ids for the new centroids: a matched old id, or a fresh one (never a reused one)."""
        ids: list[str | None] = [None] * len(new)
        shared = [j for j, name in enumerate(scaling.features) if previous and name in previous]
        if shared:
            # The old centroids in the new scaling, compared on the features both fits use.
            old = self._previous_centroids(scaling, previous)
            self._fresh_ids(len(old))
            cost = np.linalg.norm(new[:, None, shared] - old[None, :, shared], axis=2)
            for i, j in zip(*linear_sum_assignment(cost), strict=True):
                if cost[i, j] <= self.config.match_distance:
                    ids[i] = self._ids[j]
        fresh = iter(self._fresh_ids(ids.count(None), extend=False))
        return [segment if segment is not None else next(fresh) for segment in ids]

    def _match_members(self, data: np.ndarray, new: MixtureKMeans, scaling: Scaling) -> list[str]:
        """Ids for a new mixture's segments: the old id whose members on ``data`` they mostly are.

        Both models label the fit sample; a new segment inherits the id of the old one it
        shares the most users with (Hungarian assignment on the Jaccard index), when that
        index is at least ``MATCH_OVERLAP``. Mixture components on overlapping data can move
        as a whole from fit to fit while keeping their members, so members, not centres,
        say which segment is which.
        """
        old = self._clusterer.current().predict(self._scaling.transform(data, missing=np.nan))
        fresh = new.current().predict(scaling.transform(data, missing=np.nan))
        k_old, k_new = self._clusterer.mixture.k, new.mixture.k
        self._fresh_ids(k_old)
        both = np.zeros((k_new, k_old))
        np.add.at(both, (fresh, old), 1.0)
        union = both.sum(axis=1, keepdims=True) + both.sum(axis=0, keepdims=True) - both
        jaccard = np.divide(both, union, out=np.zeros_like(both), where=union > 0)
        ids: list[str | None] = [None] * k_new
        for i, j in zip(*linear_sum_assignment(-jaccard), strict=True):
            if jaccard[i, j] >= MATCH_OVERLAP:
                ids[i] = self._ids[j]
        extra = iter(self._fresh_ids(ids.count(None), extend=False))
        return [segment if segment is not None else next(extra) for segment in ids]

    def _fresh_ids(self, count: int, *, extend: bool = True) -> list[str]:
        """New ids (never used before); with ``extend``, as many as make ``self._ids`` ``count`` long."""
        needed = count - len(self._ids) if extend else count
        fresh = [f"c{n}" for n in range(self._next_id, self._next_id + max(needed, 0))]
        self._next_id += len(fresh)
        if extend:
            self._ids.extend(fresh)
        return fresh

    def _refresh(self) -> list[ModelSnapshot | DriftEvent]:
        detected_ts, detected_at, baseline, drifted, signal, shift = self._detected
        self._detected = None
        recent = list(self._users.values())[-self.config.refresh_window :]
        if not self._refit(np.array(recent)):
            return []  # keep the current model; ADWIN keeps watching it
        previous = self._version
        snapshot = self._publish(self._last_ts)
        drift = DriftEvent(detected_ts, detected_at, previous, snapshot.version, baseline, drifted, signal, shift)
        return [drift, snapshot]

    def _publish(self, ts: float) -> ModelSnapshot:
        self._version += 1
        self._since_publish = 0
        if self._clusterer is None:  # RFM cut points only
            self.snapshot = ModelSnapshot(self._version, (), (), (), (), (), (), (), self._samples, ts,
                                          rfm_edges=self.rfm.edges())  # fmt: skip
            return self.snapshot
        s = self._scaling
        centroids = _centroids(self._clusterer, s.features)
        self._fresh_ids(len(centroids))  # an online clusterer (not KMeans) may have grown clusters
        self.snapshot = ModelSnapshot(
            version=self._version,
            features=s.features,
            log_features=s.log_features,
            mean=tuple(s.centre.tolist()),
            std=tuple(s.scale.tolist()),
            centroids=tuple(tuple(row) for row in centroids.tolist()),
            segment_ids=tuple(self._ids[: len(centroids)]),
            names=tuple(name_centroids(s.features, centroids.tolist())),
            samples=self._samples,
            ts=ts,
            rfm_edges=self.rfm.edges(),
            selection=dict(self._selection) if self._selection is not None else None,
            mixture=self._clusterer.current().to_dict() if isinstance(self._clusterer, MixtureKMeans) else None,
        )
        return self.snapshot


def _resampled_labels(z: np.ndarray, fit: mixture.Fit, rng: np.random.Generator) -> np.ndarray:
    """The labels of every row under the same k refitted on a random half of the rows (stability)."""
    half = rng.permutation(len(z))[: max(len(z) // 2, fit.mixture.k)]
    again = mixture.refine(z[half], fit.labels[half], fit.mixture.k, steps=mixture.SPLIT_STEPS)
    return again.mixture.predict(z)


def _mixture_scores(z: np.ndarray, fits: dict, fit: mixture.Fit, resampled: np.ndarray, auto: bool) -> dict[str, Any]:
    """The selection record of a mixture fit: every candidate's BIC, silhouette and Davies-Bouldin index.

    Silhouette and Davies-Bouldin are measured on the scaled values (unobserved at the
    centre), on each candidate's labels (the silhouette on at most ``SILHOUETTE_ROWS``
    rows); stability is the adjusted Rand index between the chosen labels and those of the
    same k refitted on a random half of the rows.
    """
    rows = z[:SILHOUETTE_ROWS]
    dist = pairwise_distances(rows)
    candidates = []
    for k, candidate in sorted(fits.items()):
        labels = candidate.labels
        centers = np.array([z[labels == j].mean(axis=0) if (labels == j).any() else np.zeros(z.shape[1])
                            for j in range(k)])  # fmt: skip
        candidates.append({
            "k": int(k),
            "bic": round(candidate.bic, 2),
            "silhouette": round(silhouette(dist, labels[: len(rows)]), 4) if k > 1 else 0.0,
            "davies_bouldin": round(davies_bouldin(z, labels, centers), 4),
        })  # fmt: skip
    chosen = next(c for c in candidates if c["k"] == fit.mixture.k)
    stability = adjusted_rand(fit.labels, resampled) if fit.mixture.k > 1 else 1.0
    return {**chosen, "stability": round(float(stability), 4), "method": "auto" if auto else "fixed",
            "model": "mixture", "bic": round(fit.bic, 2), "candidates": candidates}  # fmt: skip


def _centroids(clusterer: Any, features: Sequence[str]) -> np.ndarray:
    centers = clusterer.centers
    rows = [[centers[i].get(name, 0.0) for name in features] for i in sorted(centers)]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(features))


def _center_dict(features: Sequence[str], center: np.ndarray) -> defaultdict[str, float]:
    out: defaultdict[str, float] = defaultdict(float)
    out.update(zip(features, center.tolist(), strict=True))
    return out
