"""Segment quality against a known ground truth.

>>> adjusted_rand_index(["a", "a", "b", "b"], [1, 1, 2, 2])
1.0
>>> round(adjusted_rand_index(["a", "a", "b", "b"], [1, 2, 1, 2]), 3)
-0.5
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def adjusted_rand_index(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Hubert and Arabie's adjusted Rand index: 1 is a perfect match, 0 is chance."""
    if len(truth) != len(predicted):
        raise ValueError("truth and predicted must have the same length")
    n = len(truth)
    if n < 2:
        return 1.0
    _, t = np.unique(np.asarray(truth, dtype=object).astype(str), return_inverse=True)
    _, p = np.unique(np.asarray(predicted, dtype=object).astype(str), return_inverse=True)
    table = np.zeros((t.max() + 1, p.max() + 1), dtype=np.int64)
    np.add.at(table, (t, p), 1)

    def pairs(x: np.ndarray) -> float:
        return float((x * (x - 1) // 2).sum())

    index = pairs(table)
    rows, cols = pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    expected = rows * cols / (n * (n - 1) / 2)
    maximum = (rows + cols) / 2
    if maximum == expected:
        return 1.0
    return (index - expected) / (maximum - expected)
