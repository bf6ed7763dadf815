"""Choosing the number of segments from the data: k-means++ over a range of k, scored.

For each candidate k, the scaled fit sample is clustered by two groups of
k-means++ restarts with different seeds; each group keeps its lowest-inertia run.
The candidate is scored by

- **stability**: the adjusted Rand index between the two groups' labelings
  (1 = both found the same partition; a k that cuts through a cluster does not
  cut it the same way twice);
- **silhouette**: the mean silhouette of at most ``SILHOUETTE_ROWS`` rows
  (-1 to 1, higher is better), of the lower-inertia labeling;
- **gain**: that silhouette minus the silhouette k-means reaches at the same k on
  a Gaussian sample of the same mean and covariance, data with no clusters at all.
  The raw silhouette favours small k (merging two nearby real groups costs it
  little) and is high for any k on low-dimensional structureless data; the gain
  over structureless data of the same shape corrects both;
- **Davies-Bouldin**: the mean, over clusters, of the worst ratio of within-cluster
  scatter to between-centroid distance (0 and up, lower is better).

Rule: keep the stable candidates (stability >= ``STABLE``; all of them if none
is) and take the best gain; candidates within ``GAIN_TIE`` of it are a tie,
broken by the lowest Davies-Bouldin index. If even the best gain is below
``NO_STRUCTURE`` the data has no cluster structure worth the name and the
smallest k is taken: a few broad segments rather than arbitrary cuts of a
continuum. Candidates run from ``k_min`` to ``k_max``, capped so that each segment
can have ``ROWS_PER_K`` rows. The rule was chosen on planted Gaussian blobs (k of
3, 6 and 9, unequal sizes, 6 to 25 dimensions) and structureless Gaussian data,
not on segstream's simulator.

>>> rng = np.random.default_rng(0)
>>> z = np.concatenate([rng.normal(c, 0.3, (n, 2)) for c, n in (((0, 0), 150), ((4, 0), 60), ((0, 4), 30))])
>>> centers, scores = select_k(z, k_min=2, k_max=6, rng=np.random.default_rng(1))
>>> scores["k"], len(centers), scores["stability"]
(3, 3, 1.0)
>>> [c["k"] for c in scores["candidates"]]
[2, 3, 4, 5, 6]
"""

from __future__ import annotations

import numpy as np

SILHOUETTE_ROWS = 1_000  # the silhouette costs rows^2: score a bounded sample
STABLE = 0.8  # adjusted Rand index between two seed groups' labelings
GAIN_TIE = 0.02
NO_STRUCTURE = 0.1  # best silhouette gain over structureless data below this: no clusters
ROWS_PER_K = 10


def select_k(
    z: np.ndarray,
    *,
    k_min: int = 2,
    k_max: int = 12,
    rng: np.random.Generator,
    restarts: int = 10,
    iterations: int = 25,
) -> tuple[np.ndarray, dict]:
    """The centroids for the chosen k and the selection's scores (JSON-ready)."""
    low, high = k_range(z, k_min, k_max)
    sample = rng.choice(len(z), size=min(len(z), SILHOUETTE_ROWS), replace=False)
    dist = pairwise_distances(z[sample])
    fits, candidates = {}, []
    for k in range(low, high + 1):
        centers, labels, stability = _stable_fit(z, k, rng, restarts, iterations)
        fits[k] = centers
        scores = _scores(k, z, labels, centers, dist, sample, stability)
        scores["gain"] = round(scores["silhouette"] - _reference_silhouette(z, k, rng, iterations), 4)
        candidates.append(scores)
    chosen = choose(candidates)
    best = next(c for c in candidates if c["k"] == chosen)
    return fits[chosen], {**best, "method": "auto", "candidates": candidates}


def fixed_k(z: np.ndarray, k: int, *, rng: np.random.Generator, restarts: int = 10, iterations: int = 25):
    """The centroids for a configured k, scored as :func:`select_k` scores a candidate."""
    k = max(1, min(k, _distinct(z)))
    sample = rng.choice(len(z), size=min(len(z), SILHOUETTE_ROWS), replace=False)
    centers, labels, stability = _stable_fit(z, k, rng, restarts, iterations)
    scores = _scores(k, z, labels, centers, pairwise_distances(z[sample]), sample, stability)
    scores["gain"] = round(scores["silhouette"] - _reference_silhouette(z, k, rng, iterations), 4)
    return centers, {**scores, "method": "fixed", "candidates": [scores]}


def choose(candidates: list[dict]) -> int:
    """The k the module's rule picks from scored candidates.

    >>> choose([{"k": 2, "gain": 0.30, "davies_bouldin": 0.9, "stability": 1.0},
    ...         {"k": 3, "gain": 0.31, "davies_bouldin": 0.6, "stability": 1.0},
    ...         {"k": 4, "gain": 0.50, "davies_bouldin": 0.4, "stability": 0.3}])
    3
    >>> choose([{"k": 2, "gain": 0.01, "davies_bouldin": 2.0, "stability": 0.4},
    ...         {"k": 3, "gain": 0.03, "davies_bouldin": 1.9, "stability": 0.9}])
    2
    """
    stable = [c for c in candidates if c["stability"] >= STABLE] or candidates
    top = max(c["gain"] for c in stable)
    if top < NO_STRUCTURE:
        return min(c["k"] for c in candidates)
    tied = [c for c in stable if c["gain"] >= top - GAIN_TIE]
    return min(tied, key=lambda c: (c["davies_bouldin"], c["k"]))["k"]


def k_range(z: np.ndarray, k_min: int, k_max: int) -> tuple[int, int]:
    """Candidate ks: at most one segment per ``ROWS_PER_K`` rows and per distinct row."""
    high = max(1, min(k_max, len(z) // ROWS_PER_K, _distinct(z)))
    return min(k_min, high), high


def kmeans(z: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 25):
    """Greedy k-means++ seeding then Lloyd steps until the labels settle: (centers, labels, inertia)."""
    n = len(z)
    sq = np.einsum("nd,nd->n", z, z)
    centers = np.empty((k, z.shape[1]))
    centers[0] = z[rng.integers(n)]
    d2 = ((z - centers[0]) ** 2).sum(axis=1)
    trials = 2 + int(np.log(k))  # greedy k-means++: the best of a few draws (Arthur & Vassilvitskii)
    for j in range(1, k):
        total = d2.sum()
        if total <= 0:
            centers[j] = z[rng.integers(n)]
            continue
        draws = rng.choice(n, size=trials, p=d2 / total)
        options = np.minimum(d2[None, :], sq[None, :] - 2.0 * (z[draws] @ z.T) + sq[draws, None])
        best = int(options.sum(axis=1).argmin())
        centers[j], d2 = z[draws[best]], np.maximum(options[best], 0.0)
    return lloyd(z, centers, iterations)


def lloyd(z: np.ndarray, centers: np.ndarray, iterations: int = 25):
    """Lloyd steps from ``centers`` until the labels settle: (centers, labels, inertia).

    >>> z = np.array([[0.0], [0.2], [5.0], [5.2]])
    >>> centers, labels, inertia = lloyd(z, np.array([[1.0], [4.0]]))
    >>> centers.ravel().round(2).tolist(), labels.tolist(), round(inertia, 3)
    ([0.1, 5.1], [0, 0, 1, 1], 0.04)
    """
    n, k = len(z), len(centers)
    centers = np.array(centers, dtype=np.float64)
    sq = np.einsum("nd,nd->n", z, z)
    labels = _nearest(z, sq, centers)
    for _ in range(iterations):
        onehot = np.zeros((n, k))
        onehot[np.arange(n), labels] = 1.0
        counts = onehot.sum(axis=0)
        alive = counts > 0  # an empty cluster keeps its centre
        centers[alive] = (onehot.T @ z)[alive] / counts[alive, None]
        new = _nearest(z, sq, centers)
        if np.array_equal(new, labels):
            break
        labels = new
    inertia = float(((z - centers[labels]) ** 2).sum())
    return centers, labels, inertia


def continue_fit(z: np.ndarray, fresh: np.ndarray, previous: np.ndarray, *, tolerance: float, iterations: int = 25):
    """``fresh`` centroids, or ``previous`` ones refined on ``z`` when they fit about as well.

    A refit on a new sample may land in another local optimum of k-means that is no
    better: the segments would be cut anew, and members would move, for nothing.
    Lloyd steps from the previous centroids (same k) are kept unless the fresh fit's
    inertia is lower by more than ``tolerance`` (a share). Returns (centers, continued).

    >>> z = np.array([[0.0], [0.2], [5.0], [5.2]])
    >>> centers, continued = continue_fit(z, np.array([[5.1], [0.1]]), np.array([[0.5], [4.5]]), tolerance=0.02)
    >>> centers.ravel().round(2).tolist(), continued
    ([0.1, 5.1], True)
    """
    if len(previous) != len(fresh) or not len(fresh):
        return fresh, False
    sq = np.einsum("nd,nd->n", z, z)
    fresh_inertia = float(((z - fresh[_nearest(z, sq, fresh)]) ** 2).sum())
    centers, _, inertia = lloyd(z, previous, iterations)
    if inertia <= fresh_inertia * (1.0 + tolerance):
        return centers, True
    return fresh, False


def adjusted_rand(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two integer labelings (1 = the same partition).

    >>> adjusted_rand(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]))
    1.0
    """
    table = np.bincount(a * (b.max() + 1) + b, minlength=(a.max() + 1) * (b.max() + 1))
    pairs = lambda x: float((x * (x - 1)).sum()) / 2.0  # noqa: E731
    index = pairs(table)
    rows = pairs(table.reshape(a.max() + 1, -1).sum(axis=1))
    cols = pairs(table.reshape(a.max() + 1, -1).sum(axis=0))
    expected = rows * cols / (len(a) * (len(a) - 1) / 2.0) if len(a) > 1 else 0.0
    maximum = (rows + cols) / 2.0
    return 1.0 if maximum == expected else (index - expected) / (maximum - expected)


def silhouette(dist: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette from a square distance matrix; members of singleton clusters score 0."""
    k = int(labels.max()) + 1
    onehot = np.zeros((len(labels), k))
    onehot[np.arange(len(labels)), labels] = 1.0
    counts = onehot.sum(axis=0)
    if (counts > 0).sum() < 2:
        return 0.0
    sums = dist @ onehot  # row -> summed distance to each cluster
    own = counts[labels]
    a = sums[np.arange(len(labels)), labels] / np.maximum(own - 1, 1)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
    means[np.arange(len(labels)), labels] = np.inf
    b = means.min(axis=1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def davies_bouldin(z: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> float:
    """The Davies-Bouldin index over the non-empty clusters (0 for fewer than two)."""
    present = np.unique(labels)
    if len(present) < 2:
        return 0.0
    c = centers[present]
    scatter = np.array([np.linalg.norm(z[labels == j] - centers[j], axis=1).mean() for j in present])
    between = np.linalg.norm(c[:, None, :] - c[None, :, :], axis=2)
    np.fill_diagonal(between, np.inf)
    ratios = (scatter[:, None] + scatter[None, :]) / np.maximum(between, 1e-12)
    return float(ratios.max(axis=1).mean())


def _stable_fit(z, k, rng, restarts, iterations):
    """The better of two seed groups' best runs, and the ARI between the two groups' labelings."""
    group = max(1, restarts // 2)
    runs = [min((kmeans(z, k, rng, iterations) for _ in range(group)), key=lambda run: run[2]) for _ in range(2)]
    (ca, la, ia), (cb, lb, ib) = runs
    stability = adjusted_rand(la, lb) if k > 1 else 1.0
    return (ca, la, stability) if ia <= ib else (cb, lb, stability)


def _reference_silhouette(z: np.ndarray, k: int, rng: np.random.Generator, iterations: int) -> float:
    """The silhouette of k-means at ``k`` on Gaussian rows of ``z``'s mean and covariance."""
    mean = z.mean(axis=0)
    _, spread, axes = np.linalg.svd(z - mean, full_matrices=False)
    rows = min(len(z), SILHOUETTE_ROWS)
    reference = rng.standard_normal((rows, len(spread))) * (spread / np.sqrt(len(z))) @ axes + mean
    _, labels, _ = min((kmeans(reference, k, rng, iterations) for _ in range(2)), key=lambda run: run[2])
    return silhouette(pairwise_distances(reference), labels)


def _scores(k, z, labels, centers, dist, sample, stability) -> dict:
    return {
        "k": int(k),
        "silhouette": round(silhouette(dist, labels[sample]), 4),
        "davies_bouldin": round(davies_bouldin(z, labels, centers), 4),
        "stability": round(float(stability), 4),
    }


def _nearest(z: np.ndarray, sq: np.ndarray, centers: np.ndarray) -> np.ndarray:
    d2 = sq[:, None] - 2.0 * (z @ centers.T) + np.einsum("kd,kd->k", centers, centers)[None, :]
    return d2.argmin(axis=1)


def pairwise_distances(x: np.ndarray) -> np.ndarray:
    sq = np.einsum("nd,nd->n", x, x)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0))


def _distinct(z: np.ndarray) -> int:
    return len(np.unique(z, axis=0))
