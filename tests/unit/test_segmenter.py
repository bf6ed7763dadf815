"""Segmenter and learner contracts: no mutation, pickling, determinism, missing features, stability."""

from __future__ import annotations

import copy
import math
import pickle
import random

import numpy as np
import pytest

from app.core.segments.learner import DriftEvent, Learner, LearnerConfig
from app.core.segments.model import ModelSnapshot, name_centroids
from app.core.segments.segmenter import Membership, Segmenter, SegmenterConfig

FEATURES = ("conversion", "search_share", "mobile_share")
CFG = SegmenterConfig(features=FEATURES, log_features=(), min_dwell_s=100.0, hysteresis=0.2)
CENTERS = ((0.0, 0.0, 0.0), (5.0, 0.0, 0.0), (0.0, 5.0, 0.0))


def blobs(n: int, seed: int, centers=CENTERS, spread=0.3) -> list[list[float]]:
    rng = random.Random(seed)
    return [[c + rng.gauss(0, spread) for c in centers[i % len(centers)]] for i in range(n)]


def train(rows, seed=1, **overrides) -> tuple[Learner, list]:
    config = LearnerConfig(n_clusters=3, warmup=150, publish_every=100, seed=seed, **overrides)
    learner = Learner(config, features=FEATURES, log_features=())
    outputs = [out for i, row in enumerate(rows) for out in learner.learn(row, ts=float(i))]
    return learner, outputs


def snapshot() -> ModelSnapshot:
    return ModelSnapshot(1, FEATURES, (), (0, 0, 0), (1, 1, 1), CENTERS, ("c1", "c2", "c3"), ("a", "b", "c"), 1, 0.0)


def test_distances_do_not_mutate_input():
    seg = Segmenter(CFG)
    seg.use(snapshot())
    rows = [[1.0, 2.0, math.nan], [0.0, 0.0, 0.0]]
    before = copy.deepcopy(rows)
    seg.scores(rows)
    assert str(rows) == str(before)


def test_learner_does_not_mutate_input():
    learner, _ = train(blobs(200, 3))
    row = [1.0, math.nan, 2.0]
    learner.learn(row, ts=0.0)
    assert str(row) == str([1.0, math.nan, 2.0])


def test_missing_features_are_imputed_with_the_population_mean():
    seg = Segmenter(CFG)
    seg.use(snapshot())
    full = seg.scores([[5.0, 0.0, 0.0]])
    missing = seg.scores([[5.0, 0.0, math.nan]])
    np.testing.assert_allclose(full, missing)


def test_model_reading_fewer_features_in_other_order_is_accepted():
    seg = Segmenter(CFG)
    seg.use(ModelSnapshot(1, ("search_share", "conversion"), (), (0, 0), (1, 1), ((0, 5), (5, 0)),
                          ("c1", "c2"), ("a", "b"), 1, 0.0))  # fmt: skip
    assert seg.scores([[5.0, 0.0, 9.0]]).argmin() == 0


def test_model_needing_unknown_features_is_refused():
    seg = Segmenter(SegmenterConfig(features=("conversion",), log_features=()))
    with pytest.raises(ValueError, match="does not compute"):
        seg.use(snapshot())


def test_same_seed_same_model_other_seed_may_differ_but_finds_same_clusters():
    rows = blobs(600, 5)
    _, a = train(rows, seed=1)
    _, b = train(rows, seed=1)
    assert a == b
    _, c = train(rows, seed=2)
    centers = lambda outputs: sorted(tuple(round(x) for x in row) for row in outputs[-1].centroids)  # noqa: E731
    assert centers(a) == centers(c)


def test_pickle_round_trip_before_and_after_learning():
    rows = blobs(400, 7)
    fresh = Learner(LearnerConfig(n_clusters=3, warmup=150, publish_every=100), features=FEATURES, log_features=())
    clone = pickle.loads(pickle.dumps(fresh))
    assert [fresh.learn(r, 0.0) for r in rows[:300]] == [clone.learn(r, 0.0) for r in rows[:300]]
    restored = pickle.loads(pickle.dumps(fresh))
    assert [fresh.learn(r, 1.0) for r in rows[300:]] == [restored.learn(r, 1.0) for r in rows[300:]]


def test_learner_recovers_the_clusters():
    _, outputs = train(blobs(900, 11))
    model = outputs[-1]
    assert isinstance(model, ModelSnapshot) and len(model.segment_ids) == 3
    seg = Segmenter(CFG)
    seg.use(model)
    test_rows = blobs(90, 99)
    predicted = seg.scores(test_rows).argmin(axis=1)
    truth = [i % 3 for i in range(90)]
    # A perfect partition: every true cluster maps to exactly one predicted segment.
    assert len({(t, p) for t, p in zip(truth, predicted, strict=True)}) == 3


def test_drift_refreshes_the_model_and_keeps_segment_ids():
    shifted = tuple((a + 3.0, b + 3.0, c) for a, b, c in CENTERS)
    rows = blobs(1500, 1) + blobs(3000, 2, centers=shifted, spread=0.6)
    _, outputs = train(rows, drift_cooldown=500, refresh_window=600)
    drifts = [o for o in outputs if isinstance(o, DriftEvent)]
    assert drifts, "ADWIN should see the fit get worse after the shift"
    # The model as it was when ADWIN fired, and the refit on fresh samples.
    before = [o for o in outputs if isinstance(o, ModelSnapshot) and o.samples < drifts[0].samples][-1]
    after = next(o for o in outputs if isinstance(o, ModelSnapshot) and o.version == drifts[0].version)
    assert drifts[0].drifted_distance > drifts[0].baseline_distance
    raw = lambda m: np.array(m.centroids) * np.array(m.std) + np.array(m.mean)  # noqa: E731
    old, new = raw(before), raw(after)
    # Each id now names the shifted version of the cluster it named before.
    for i, segment in enumerate(after.segment_ids):
        j = before.segment_ids.index(segment)
        assert np.linalg.norm(new[i] - old[j] - np.array([3.0, 3.0, 0.0])) < 1.0
    assert sorted(after.segment_ids) == sorted(before.segment_ids)


def test_hysteresis_and_dwell_stop_flapping_at_a_boundary():
    seg = Segmenter(CFG)
    seg.use(snapshot())
    member = Membership()
    rng = random.Random(0)
    # A user sitting on the boundary between c1 and c2 (x = 2.5), jittering.
    rows = [[2.5 + rng.gauss(0, 0.2), 0.0, 0.0] for _ in range(200)]
    changes = [seg.decide(member, row, ts=float(i), eligible=True) for i, row in enumerate(seg.scores(rows))]
    # Entered once; the dwell time allows at most one move in the 200 s seen here.
    assert sum(c is not None for c in changes) <= 2
    loose = Segmenter(SegmenterConfig(features=FEATURES, log_features=(), min_dwell_s=0.0, hysteresis=0.0))
    loose.use(snapshot())
    free = Membership()
    flaps = [loose.decide(free, row, ts=float(i), eligible=True) for i, row in enumerate(loose.scores(rows))]
    assert sum(c is not None for c in flaps) > 20


def test_new_users_wait_for_evidence():
    seg = Segmenter(CFG)
    seg.use(snapshot())
    member = Membership()
    (row,) = seg.scores([[5.0, 0.0, 0.0]])
    assert seg.decide(member, row, ts=0.0, eligible=False) is None
    assert seg.decide(member, row, ts=1.0, eligible=True) == "c2"
    assert (member.seq, member.since_ts, member.model_version) == (1, 1.0, 1)


def test_names_are_readable_and_unique():
    names = name_centroids(("monetary", "mobile_share"), [(2.0, -1.0), (2.1, -0.9), (0.1, 0.1)])
    assert names == ["high spend · desktop", "high spend · desktop (2)", "typical"]


@pytest.mark.parametrize("algorithm", ["DenStream", "DBSTREAM", "CluStream"])
def test_other_river_clusterers_never_crash_the_learner(algorithm):
    """A clusterer that finds no clusters yet publishes nothing; one that does publishes ids."""
    config = LearnerConfig(algorithm=algorithm, params={}, warmup=150, publish_every=100)
    learner = Learner(config, features=FEATURES, log_features=())
    outputs = [out for i, row in enumerate(blobs(600, 4)) for out in learner.learn(row, ts=float(i))]
    for snapshot in outputs:
        assert isinstance(snapshot, ModelSnapshot)
        assert len(snapshot.segment_ids) == len(snapshot.centroids) == len(set(snapshot.segment_ids))


def test_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="river.cluster has no 'Kmeans'"):
        LearnerConfig(algorithm="Kmeans")


def test_a_fit_that_got_better_then_one_far_sample_is_no_drift():
    """ADWIN also detects decreases, and River empties its window at the next update:
    the direction must be judged at the detection, not on the one sample after it."""
    from app.core.segments.fit_monitor import FitMonitor

    rng = np.random.default_rng(0)
    monitor = FitMonitor(mean=np.zeros(1), std=np.ones(1), centroids=np.array([[0.0]]), cooldown=100)
    assert not any(monitor.observe(np.array([rng.normal(0, 1.0)])) for _ in range(1_000))
    for _ in range(2_000):  # users gain evidence: samples come closer to their centroid
        assert not monitor.observe(np.array([rng.normal(0, 0.3)]))
        if monitor.change_detected:
            break
    assert monitor.change_detected, "ADWIN should see the distances fall"
    assert not monitor.observe(np.array([9.0]))  # one far sample right after the reset
    # A real degradation is still reported.
    assert any(monitor.observe(np.array([rng.normal(3.0, 1.0)])) for _ in range(2_000))


def test_min_odds_and_dwell_stop_flapping_between_mixture_segments():
    rng = np.random.default_rng(4)
    learner = Learner(LearnerConfig(n_clusters=2, warmup=400), features=FEATURES)
    for i in range(400):
        centre = (0.0, 0.0, 0.0) if i % 2 else (5.0, 0.0, 0.0)
        learner.learn((np.array(centre) + rng.normal(0, 1.0, 3)).tolist(), ts=float(i), user=f"u{i}")
    model = learner.snapshot
    assert model.mixture is not None and len(model.segment_ids) == 2
    boundary = [[2.5 + rng.normal(0, 0.3), 0.0, 0.0] for _ in range(300)]

    def moves(config: SegmenterConfig) -> int:
        seg = Segmenter(config)
        seg.use(model)
        member = Membership()
        return sum(seg.decide(member, row, ts=float(i), eligible=True) is not None
                   for i, row in enumerate(seg.scores(boundary)))  # fmt: skip

    free = moves(SegmenterConfig(features=FEATURES, log_features=(), min_dwell_s=0.0, min_odds=1.0))
    odds = moves(SegmenterConfig(features=FEATURES, log_features=(), min_dwell_s=0.0))
    assert free > 50 and odds < free / 3
    assert moves(SegmenterConfig(features=FEATURES, log_features=())) <= 1  # the 1 h dwell: entered, then stays
