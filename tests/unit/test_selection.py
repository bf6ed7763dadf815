"""k chosen from the data, robust scaling and feature dropping, ids across refits, any stream gets a model."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import orjson
import pytest

from app.core.engine.embedded import EmbeddedPipeline
from app.core.engine.process import EngineConfig
from app.core.segments.learner import Learner, LearnerConfig
from app.core.segments.model import ModelSnapshot
from app.core.segments.rfm import rfm_scores
from app.core.segments.scaling import fit_scaling
from app.core.segments.segmenter import Membership, Segmenter, SegmenterConfig
from app.core.segments.selection import continue_fit, select_k


def planted(centers: int, sizes: list[int], dims: int, seed: int) -> np.ndarray:
    """Gaussian blobs (sd 1) of unequal sizes, centres at least 8 apart, standardised."""
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    while len(chosen) < centers:
        c = rng.uniform(-10, 10, dims)
        if all(np.linalg.norm(c - o) >= 8.0 for o in chosen):
            chosen.append(c)
    x = np.concatenate([rng.normal(c, 1.0, (n, dims)) for c, n in zip(chosen, sizes, strict=True)])
    return (x - x.mean(axis=0)) / x.std(axis=0)


@pytest.mark.parametrize(("k", "sizes"), [(3, [150, 60, 30]), (6, [120, 80, 60, 40, 30, 25])])
def test_k_is_chosen_on_planted_blobs_of_unequal_sizes(k, sizes):
    centers, scores = select_k(planted(k, sizes, 5, seed=1), rng=np.random.default_rng(7))
    assert scores["k"] == k == len(centers)
    assert scores["method"] == "auto" and scores["stability"] >= 0.8
    assert [c["k"] for c in scores["candidates"]] == list(range(2, 13))


@pytest.mark.parametrize("dims", [2, 6])
def test_no_structure_gives_the_smallest_k(dims):
    noise = np.random.default_rng(dims).normal(size=(400, dims))
    centers, scores = select_k(noise, rng=np.random.default_rng(1))
    assert scores["k"] == 2 == len(centers)


def test_tiny_and_degenerate_samples_do_not_crash():
    _, scores = select_k(np.zeros((30, 3)), rng=np.random.default_rng(0))
    assert scores["k"] == 1  # one distinct row: one segment
    _, few = select_k(np.random.default_rng(0).normal(size=(25, 2)), rng=np.random.default_rng(0))
    assert few["k"] <= 2  # at most one segment per 10 rows


def test_missing_and_constant_features_are_dropped_and_heavy_tails_logged():
    rng = np.random.default_rng(3)
    n = 400
    data = np.column_stack([
        rng.lognormal(4, 1.2, n),  # order value: heavy tail
        np.where(rng.random(n) < 0.8, np.nan, rng.random(n)),  # device share: missing for most
        np.where(rng.random(n) < 0.98, 0.0, 1.0),  # scroll depth: 0 for nearly everyone
        rng.normal(0, 1, n),
    ])  # fmt: skip
    scaling = fit_scaling(data, ("avg_order_value", "mobile_share", "mean_scroll_depth", "x"))
    assert scaling.features == ("avg_order_value", "x")
    assert set(scaling.dropped) == {"mobile_share", "mean_scroll_depth"}
    assert scaling.dropped["mobile_share"].startswith("missing")
    assert scaling.dropped["mean_scroll_depth"].startswith("constant")
    assert scaling.log_features == ("avg_order_value",)
    assert np.abs(scaling.transform(data)).max() <= 5.0


def test_learner_segmenter_and_snapshot_scale_identically():
    rng = random.Random(5)
    features = ("avg_order_value", "mobile_share", "search_share")
    learner = Learner(LearnerConfig(n_clusters="auto", warmup=200, publish_every=50, min_users=50), features=features)
    rows = [[rng.lognormvariate(3 + 2 * (i % 2), 0.5), math.nan, 0.0] for i in range(300)]
    models = [out for i, row in enumerate(rows) for out in learner.learn(row, ts=float(i), user=f"u{i}")]
    model = models[-1]
    assert model.features == ("avg_order_value",) and model.log_features == ("avg_order_value",)
    assert set(model.selection["dropped"]) == {"mobile_share", "search_share"}
    assert model.selection["features"] == ["avg_order_value"] and model.selection["k"] == 2
    assert ModelSnapshot.from_dict(orjson.loads(orjson.dumps(model.to_dict()))) == model
    seg = Segmenter(SegmenterConfig(features=features, log_features=()))
    seg.use(model)
    np.testing.assert_allclose(seg.scale(rows[:20]), learner._scaling.transform(np.array(rows[:20])))


def test_old_snapshots_without_selection_still_read():
    doc = ModelSnapshot(1, ("conversion",), (), (0.0,), (1.0,), ((0.0,),), ("c1",), ("a",), 1, 0.0).to_dict()
    del doc["selection"]
    assert ModelSnapshot.from_dict(doc).selection is None


BLOBS = {"a": (0.0, 0.0), "b": (8.0, 0.0), "c": (0.0, 8.0), "d": (8.0, 8.0)}


def _row(rng: random.Random, blob: str) -> list[float]:
    x, y = BLOBS[blob]
    return [x + rng.gauss(0, 0.4), y + rng.gauss(0, 0.4)]


def test_ids_stay_with_matching_centroids_as_k_grows_and_shrinks():
    """a, b, c; then d appears (k 3 -> 4); then c's users move to a (k 4 -> 3)."""
    rng = random.Random(2)
    features = ("conversion", "search_share")
    learner = Learner(LearnerConfig(n_clusters="auto", min_users=60, warmup=240, refresh_window=240,
                                    publish_every=10_000),
                      features=features)  # fmt: skip
    fits: list[ModelSnapshot] = []
    feed = lambda user, blob: fits.extend(learner.learn(_row(rng, blob), ts=0.0, user=user))  # noqa: E731
    for i in range(60):
        feed(f"u{i}", "abc"[i % 3])
    for i in range(60, 120):
        feed(f"u{i}", "abd"[i % 3])
    for i in range(0, 60, 3):  # c's users now behave like a
        feed(f"u{i + 2}", "a")
    for i in range(120, 240):
        feed(f"u{i}", "abd"[i % 3])
    first, grown, shrunk = fits

    def ids_by_blob(model: ModelSnapshot) -> dict[str, str]:
        seg = Segmenter(SegmenterConfig(features=features, log_features=()))
        seg.use(model)
        return {blob: model.segment_ids[int(seg.scores([list(xy)]).argmin())] for blob, xy in BLOBS.items()}

    assert len(first.segment_ids) == 3 and len(grown.segment_ids) == 4 and len(shrunk.segment_ids) == 3
    before, during, after = ids_by_blob(first), ids_by_blob(grown), ids_by_blob(shrunk)
    assert {during[b] for b in "abc"} == {before[b] for b in "abc"} == set(first.segment_ids)
    assert during["d"] not in first.segment_ids  # a new segment, a new id
    assert set(shrunk.segment_ids) == {during[b] for b in "abd"}  # c is retired
    assert after["d"] == during["d"] and after["a"] == before["a"]

    # A member of the retired segment leaves it at their next decision, dwell or not.
    seg = Segmenter(SegmenterConfig(features=features, log_features=(), min_dwell_s=3_600.0))
    seg.use(shrunk)
    member = Membership(before["c"], since_ts=0.0, seq=1)
    (row,) = seg.scores([_row(rng, "a")])
    assert seg.decide(member, row, ts=1.0, eligible=True) == after["a"]
    assert member.segment != before["c"] and member.seq == 2


def _purchases(users: int, seed: int) -> list[bytes]:
    """A purchase-only history: 1 to 5 purchases per customer in 1998, nothing else."""
    rng = random.Random(seed)
    start = 883_612_800.0  # 1998-01-01
    events = []
    for u in range(users):
        for _ in range(rng.randint(1, 5)):
            ts = start + rng.uniform(0, 365 * 86_400)
            events.append({"user_id": f"cust{u}", "type": "purchase", "ts": ts, "value": round(rng.lognormvariate(3, 1), 2)})
    events.sort(key=lambda e: e["ts"])
    return [orjson.dumps(e) for e in events]


def test_a_purchase_only_stream_gets_rfm_cut_points_and_a_model():
    pipeline = EmbeddedPipeline(EngineConfig())
    messages = _purchases(400, seed=1)
    outs = [pipeline.feed(messages[i : i + 100], now=1_000_000_000.0) for i in range(0, len(messages), 100)]
    assert not any(out.rejects for out in outs)
    model = pipeline.engine.model
    assert model.clustered and model.rfm_edges is not None and model.selection["k"] >= 1
    states = pipeline.states.values()
    scored = [rfm_scores(model.rfm_edges, recency_days=0.0, frequency=s.features.purchases,
                         monetary=s.features.monetary) for s in states]  # fmt: skip
    assert all(None not in scores for scores in scored)
    # Users whose last purchase came before the first model stay "new" until they buy again.
    assert sum(s.membership.segment != "new" for s in states) >= 0.8 * len(pipeline.states)
    assert any(change["kind"] == "rule" for out in outs for change in out.changes)  # RFM rule segments


def test_an_rfm_only_snapshot_is_no_cluster_model():
    learner = Learner(LearnerConfig(publish_every=1_000), features=("conversion",))
    published = [s for n in range(60) for s in learner.learn_rfm(float(n), 1.0 + n % 4, 10.0 * n, ts=float(n))]
    assert len(published) == 1 and not published[0].centroids and published[0].rfm_edges is not None
    pipeline = EmbeddedPipeline(EngineConfig(), model=published[0], learn=False)
    out = pipeline.feed(_purchases(30, seed=2), now=1_000_000_000.0)
    assert not [c for c in out.changes if c["kind"] == "cluster"]
    assert all(s.membership.segment == "new" for s in pipeline.states.values())
    assert any(c["kind"] == "rule" for c in out.changes)


def test_a_small_site_gets_a_model():
    from app.simulator import Scenario, generate

    messages = [m.to_bytes() for m in generate(Scenario(users=60, events=1_500, seed=4))]
    pipeline = EmbeddedPipeline(EngineConfig())
    pipeline.feed(messages, now=2e9)
    assert pipeline.engine.model is not None and pipeline.engine.model.clustered


def test_refits_on_an_unchanged_population_keep_every_segment():
    """k-means on a continuum has many equally good cuts; a refit must not re-cut it for nothing."""
    rng = np.random.default_rng(5)
    learner = Learner(LearnerConfig(algorithm="KMeans", n_clusters=4, min_users=200, warmup=400, refit_every=400,
                                    publish_every=10_000), features=("x", "y", "z"))  # fmt: skip
    fits = [out for i in range(4_000) for out in learner.learn(rng.normal(0.0, 1.0, 3).tolist(), ts=float(i),
                                                                user=f"u{i}")]  # fmt: skip
    periodic = [fit for fit in fits if fit.samples > 400]
    assert len(periodic) >= 8
    assert {fit.segment_ids for fit in periodic} == {fits[-1].segment_ids}
    assert all(fit.selection["continued"] for fit in periodic)


def test_mixture_refits_on_an_unchanged_population_keep_every_segment():
    """Three overlapping groups, refitted every 400 samples: the same three ids throughout, continued."""
    rng = np.random.default_rng(7)
    centres = np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 1.0], [0.0, 2.5, -1.0]])
    learner = Learner(LearnerConfig(min_users=200, warmup=400, refit_every=400, publish_every=10_000),
                      features=("x", "y", "z"))  # fmt: skip
    fits = [out for i in range(4_000)
            for out in learner.learn((centres[i % 3] + rng.normal(0.0, 0.7, 3)).tolist(), ts=float(i), user=f"u{i}")]
    periodic = [fit for fit in fits if fit.samples > 400]
    assert len(periodic) >= 8
    assert {fit.segment_ids for fit in periodic} == {fits[-1].segment_ids}
    assert len(fits[-1].segment_ids) == 3
    assert all(fit.selection["continued"] for fit in periodic)


def test_a_fixed_k_on_structureless_data_publishes_no_empty_segment():
    rng = np.random.default_rng(5)
    learner = Learner(LearnerConfig(n_clusters=4, min_users=200, warmup=400, refit_every=400, publish_every=10_000),
                      features=("x", "y", "z"))  # fmt: skip
    fits = [out for i in range(2_000) for out in learner.learn(rng.normal(0.0, 1.0, 3).tolist(), ts=float(i),
                                                                user=f"u{i}")]  # fmt: skip
    assert all(min(fit.mixture["weights"]) * min(fit.samples, 1_000) >= 5 for fit in fits)  # users in the fit sample
    assert fits[-1].selection["method"] == "fixed"


def test_a_refit_recuts_the_segments_when_that_fits_much_better():
    """Previous centroids stuck in a poor optimum (two in one group, one between two others) are replaced."""
    rng = np.random.default_rng(6)
    z = np.concatenate([rng.normal(c, 0.3, (200, 2)) for c in ((0, 0), (6, 0), (0, 6))])
    fresh = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    stuck = np.array([[-0.2, 0.0], [0.2, 0.0], [3.0, 3.0]])
    centers, continued = continue_fit(z, fresh, stuck, tolerance=0.05)
    assert not continued and np.array_equal(centers, fresh)
    near, continued = continue_fit(z, fresh, fresh + 0.4, tolerance=0.05)
    assert continued and np.abs(near - fresh).max() < 0.1


@pytest.mark.parametrize(("k", "sizes"), [(3, [500, 300, 200]), (6, [300, 200, 150, 150, 100, 100])])
def test_the_default_learner_finds_the_planted_k(k, sizes):
    """Default configuration (mixture, k by BIC): planted blobs through learn() give k segments."""
    x = planted(k, sizes, 5, seed=2)
    order = np.random.default_rng(3).permutation(len(x))
    learner = Learner(LearnerConfig(), features=tuple(f"f{i}" for i in range(5)))
    outputs = [out for i in order for out in learner.learn(x[i].tolist(), ts=float(i), user=f"u{i}")]
    snapshot = [out for out in outputs if hasattr(out, "selection")][-1]
    assert snapshot.selection["k"] == k == len(snapshot.centroids)
    assert snapshot.selection["model"] == "mixture" and snapshot.selection["method"] == "auto"
    assert [c["k"] for c in snapshot.selection["candidates"]] == list(range(1, k + 2))  # stops after k


def test_a_checkpoint_learned_under_other_settings_does_not_resume():
    old = pickle.loads(pickle.dumps(Learner(LearnerConfig(algorithm="KMeans", n_clusters=5), features=("x", "y"))))
    assert old.resumes(LearnerConfig(algorithm="KMeans", n_clusters=5), ("x", "y"))
    assert not old.resumes(LearnerConfig(), ("x", "y"))  # the default is now the mixture, k by BIC
    assert not old.resumes(LearnerConfig(algorithm="KMeans", n_clusters=5), ("x", "y", "z"))
