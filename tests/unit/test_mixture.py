"""The mixture model: segments with their own spreads, point masses, missing values, k by BIC."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from app.core.segments.mixture import (
    Mixture, atom_redundancy_weights, choose_k, find_atoms, grow, redundancy_weights, refine,
)  # fmt: skip
from app.core.segments.selection import adjusted_rand, kmeans


def _audiences(rng: np.random.Generator, n: int = 900) -> tuple[np.ndarray, np.ndarray]:
    """Three audiences told apart by one sharp feature (the hour) and one wide one; ten wide noise features.

    k-means cuts along the noise, whose total variance is larger than the hour's.
    """
    truth = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    hour = np.array([-1.0, 1.0, 0.0])[truth] + rng.normal(0, 0.08, n)
    spend = np.array([0.0, 0.0, 3.0])[truth] + rng.normal(0, 0.6, n)
    noise = rng.normal(0, 1.5, (n, 10))
    return np.column_stack([hour, spend, noise]), truth


def test_a_sharp_feature_among_noise_gives_the_planted_segments_where_kmeans_fails():
    rng = np.random.default_rng(3)
    z, truth = _audiences(rng)
    fits = grow(z, k_max=8, rng=rng)
    k = choose_k(fits, k_min=2)
    assert k == 3
    assert adjusted_rand(fits[k].labels, truth) > 0.95
    _, labels, _ = min((kmeans(z, 3, rng) for _ in range(5)), key=lambda run: run[2])
    assert adjusted_rand(labels, truth) < 0.5  # k-means cuts along the noise: what this model exists to beat


def test_point_masses_do_not_make_segments_of_their_own():
    """A zero-inflated feature, the same in both audiences, is an atom: it adds no segment."""
    rng = np.random.default_rng(5)
    n = 800
    truth = rng.choice(2, size=n)
    x = np.array([-2.0, 2.0])[truth] + rng.normal(0, 0.5, n)
    share = np.where(rng.random(n) < 0.6, 0.0, rng.gamma(2.0, 0.5, n))  # 60% exactly 0
    ones = np.where(rng.random(n) < 0.3, 1.0, rng.random(n))  # 30% exactly 1
    z = np.column_stack([x, share, ones])
    features, values = find_atoms(z)
    assert sorted(zip(features.tolist(), values.tolist())) == [(1, 0.0), (2, 1.0)]
    fits = grow(z, k_max=6, rng=rng)
    assert choose_k(fits, k_min=1) == 2
    assert adjusted_rand(fits[2].labels, truth) > 0.95


def test_no_structure_is_one_segment():
    rng = np.random.default_rng(8)
    z = rng.normal(0, 1, (600, 4))
    assert choose_k(grow(z, k_max=6, rng=rng), k_min=1) == 1


def test_missing_values_leave_the_likelihood():
    """A user seen on one feature only is placed by that feature, not pulled to the centre."""
    rng = np.random.default_rng(11)
    n = 600
    truth = rng.choice(2, size=n)
    z = np.column_stack([np.array([-2.0, 2.0])[truth], np.array([3.0, -3.0])[truth]]) + rng.normal(0, 0.3, (n, 2))
    z[rng.random(n) < 0.4, 1] = np.nan  # 40% never show the second feature
    model = grow(z, k_max=3, rng=rng, stop_early=False)[2].mixture
    on_first_only = model.predict(np.array([[2.1, np.nan], [-1.9, np.nan]]))
    on_second_only = model.predict(np.array([[np.nan, -2.9], [np.nan, 3.2]]))
    assert on_first_only.tolist() == on_second_only.tolist()
    assert on_first_only[0] != on_first_only[1]
    posterior = model.posterior(np.array([[np.nan, np.nan]]))
    assert np.allclose(posterior, model.weights[None, :])  # nothing seen: the prior


def test_redundant_features_count_about_as_one():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 1, 500)
    z = np.column_stack([base, base + rng.normal(0, 0.05, 500), base * 2.0, rng.normal(0, 1, 500)])
    weights = redundancy_weights(z)
    assert weights[3] == pytest.approx(1.0)
    assert weights[:3] == pytest.approx(np.full(3, 1 / np.sqrt(3)), abs=0.01)


def test_refine_keeps_a_good_labelling_and_round_trips():
    rng = np.random.default_rng(4)
    z, truth = _audiences(rng, 600)
    fit = refine(z, truth, 3)
    assert adjusted_rand(fit.labels, truth) > 0.95
    model = fit.mixture
    assert Mixture.from_dict(model.to_dict()) == model
    assert pickle.loads(pickle.dumps(model)) == model
    rows = z[:5].copy()
    model.log_joint(rows)
    assert np.array_equal(rows, z[:5])  # input not mutated
    assert model.expected().shape == (3, z.shape[1])


def test_same_seed_same_fit():
    z, _ = _audiences(np.random.default_rng(9), 400)
    a = grow(z, k_max=5, rng=np.random.default_rng(1))
    b = grow(z, k_max=5, rng=np.random.default_rng(1))
    assert sorted(a) == sorted(b)
    assert all(a[k].mixture == b[k].mixture for k in a)


def test_the_one_row_path_scores_as_the_batch_path():
    rng = np.random.default_rng(12)
    z, _ = _audiences(rng, 500)
    z[rng.random(z.shape) < 0.1] = np.nan
    z[rng.random(500) < 0.3, 1] = 0.0  # an atom
    model = grow(z, k_max=4, rng=rng, stop_early=False)[4].mixture
    batch = model.log_joint(z[:50])
    rows = np.array([model.log_joint_row(row)[0] for row in z[:50]])
    assert np.allclose(batch, rows)


def test_a_constant_column_has_no_redundancy_and_raises_no_warning():
    z = np.column_stack([np.zeros(50), np.arange(50.0), np.full(50, np.nan)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert redundancy_weights(z) == pytest.approx(np.ones(3))


def test_atoms_that_say_one_thing_count_about_as_one():
    """ "Never bought" is an atom of three funnel ratios at once; it must not vote three times."""
    rng = np.random.default_rng(5)
    never = rng.random(800) < 0.4
    ratios = [np.where(never, 0.0, rng.uniform(0.1, 1.0, 800)) for _ in range(3)]
    device = np.where(rng.random(800) < 0.3, 1.0, rng.uniform(0.0, 0.9, 800))  # an atom of its own
    z = np.column_stack([*ratios, device])
    atom_features, atom_values = find_atoms(z)
    assert atom_features.tolist() == [0, 1, 2, 3] and atom_values.tolist() == [0.0, 0.0, 0.0, 1.0]
    weights = atom_redundancy_weights(z, atom_features, atom_values)
    assert weights[:3] == pytest.approx(np.full(3, 1 / np.sqrt(3)), abs=0.01)
    assert weights[3] == pytest.approx(1.0, abs=0.05)


def test_atoms_of_one_feature_exclude_each_other_and_keep_their_weight():
    rng = np.random.default_rng(6)
    z = rng.choice([0.0, 1.0, 0.5], size=(600, 1), p=[0.4, 0.4, 0.2])
    atom_features, atom_values = find_atoms(z)
    assert len(atom_values) == 2
    assert atom_redundancy_weights(z, atom_features, atom_values) == pytest.approx(np.ones(2))


def test_a_snapshot_from_before_atom_weights_weighs_each_atom_as_its_feature():
    z, _ = _audiences(np.random.default_rng(7), 300)
    z[:100, 1] = 0.0
    model = grow(z, k_max=3, rng=np.random.default_rng(0), stop_early=False)[3].mixture
    old = model.to_dict()
    del old["atom_weights"]
    restored = Mixture.from_dict(old)
    assert restored.atom_weights.tolist() == model.feature_weights[model.atom_features].tolist()
