"""The offline yardstick of the quality benchmark: scikit-learn KMeans on segstream's exported features.

"The same features" are the numeric values of each final profile's ``features`` dict
(``EmbeddedPipeline.profiles()``), whatever names are there at run time. Booleans count as
0/1; None, NaN and non-numbers are missing and imputed with the column median; columns that
are missing everywhere or constant are dropped; then every column is standardised.
scikit-learn is a benchmark dependency only (``pip install -e '.[bench]'``), imported lazily.

>>> x, names, users = feature_matrix([{"user_id": "a", "features": {"n": 1, "t": "x", "c": 2, "m": None}},
...                                  {"user_id": "b", "features": {"n": 3, "t": "y", "c": 2, "m": None}}])
>>> names, x.round(3).tolist(), users
(['n'], [[-1.0], [1.0]], ['a', 'b'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench.public_data import INSTALL_HINT, MissingDependency

__all__ = ["feature_matrix", "kmeans_scan", "require_sklearn", "scores_of"]


def require_sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise MissingDependency(f"the quality benchmark compares with scikit-learn, which is not installed: "
                                f"{INSTALL_HINT}") from None


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return math.nan


def feature_matrix(profiles: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, list[str], list[str]]:
    """(standardised users x features, the feature names kept, the user ids) from final profiles."""
    names = sorted({name for p in profiles for name, v in p["features"].items() if not math.isnan(_number(v))})
    users = [p["user_id"] for p in profiles]
    x = np.array([[_number(p["features"].get(name)) for name in names] for p in profiles], dtype=float)
    x = x.reshape(len(profiles), len(names))
    keep = []
    for j in range(x.shape[1]):
        column = x[:, j]
        observed = ~np.isnan(column)
        if not observed.any():
            continue
        column[~observed] = np.median(column[observed])
        if column.std() > 0:
            keep.append(j)
    x = x[:, keep]
    x = (x - x.mean(axis=0)) / x.std(axis=0) if keep else x
    return x, [names[j] for j in keep], users


def scores_of(x: np.ndarray, labels: Sequence, seed: int) -> tuple[float | None, float | None]:
    """(silhouette on a sample of at most 5,000 rows, Davies-Bouldin) of a labelling; None if < 2 labels."""
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    labels = np.asarray(labels)
    if len(set(labels.tolist())) < 2 or len(labels) < 3:
        return None, None
    sample = min(len(labels), 5_000)
    silhouette = silhouette_score(x, labels, sample_size=sample, random_state=seed)
    return float(silhouette), float(davies_bouldin_score(x, labels))


def kmeans_scan(x: np.ndarray, ks: range, seed: int) -> dict[int, dict[str, Any]]:
    """KMeans for each k: labels, inertia, silhouette and Davies-Bouldin."""
    from sklearn.cluster import KMeans

    out = {}
    for k in ks:
        if k >= len(x):
            break
        model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
        silhouette, db = scores_of(x, model.labels_, seed)
        out[k] = {"labels": model.labels_, "inertia": float(model.inertia_), "silhouette": silhouette,
                  "davies_bouldin": db}
    return out
