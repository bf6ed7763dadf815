"""Robust scaling and feature selection, decided once per fit from the fit sample.

Real audiences have heavy tails (order values, views per session) and holes
(no device field, no scroll data, purchase-only streams). Per candidate feature,
on the fit sample (one row per user):

1. **Dropped when missing**: more than ``max_missing`` of the users have no value
   (NaN). Imputing most users at the centre would squeeze them into one point.
2. **Dropped when constant**: more than ``max_constant`` of the users with a value
   share one value, or the values have no spread at all. Such a feature carries
   no segment and, scaled by a tiny spread, would let a handful of users dominate.
3. **log1p** when the feature is a non-negative magnitude (some values above 1, so not a
   share in [0, 1], which log1p would barely reshape) and its sample skewness is above
   ``SKEW_FOR_LOG`` (or when the configuration asks for it).
4. **Centre** = the median; **scale** = the standard deviation of the values
   winsorized at their 1st and 99th percentiles. Not the IQR: for a feature that
   separates two groups the IQR spans the gap between them, so IQR scaling would
   shrink exactly the features that separate segments, and let unimodal noise
   features dominate. The winsorized spread ignores the extreme users, not the gap.

The scaled value is then ``(x - centre) / scale`` clipped to +-5
(:func:`app.core.segments.model.standardize`). The centre and scale are frozen until the
next fit and ship in the snapshot as ``mean``/``std``, so the learner, the fit
monitor and every segmenter transform identically.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> data = np.column_stack([rng.lognormal(3, 1, 500), np.full(500, np.nan), np.zeros(500), rng.normal(0, 1, 500)])
>>> scaling = fit_scaling(data, ("order_value", "scroll", "searches", "x"))
>>> scaling.features, scaling.log_features
(('order_value', 'x'), ('order_value',))
>>> scaling.dropped
{'scroll': 'missing for 100% of users', 'searches': 'constant: 100% of users have 0'}
>>> z = scaling.transform(data)
>>> z.shape, bool(abs(np.median(z[:, 0])) < 1e-9)
((500, 2), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from app.core.segments.model import log_columns, standardize

SKEW_FOR_LOG = 1.0  # sample skewness above which a non-negative feature is log1p'ed
WINSOR = (1, 99)  # percentiles the spread is measured between
_TINY = 1e-9


@dataclass(frozen=True)
class Scaling:
    """Which candidate columns the model reads, and how each is transformed."""

    features: tuple[str, ...]  # used, in candidate order
    columns: tuple[int, ...]  # their positions among the candidates
    log_features: tuple[str, ...]
    centre: np.ndarray
    scale: np.ndarray
    dropped: dict[str, str] = field(default_factory=dict)

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Candidate rows (or one row) -> the used columns, log1p applied: unscaled model space."""
        return log_columns(np.array(x, dtype=np.float64)[..., self._columns], self._log_mask)

    @cached_property
    def _columns(self) -> list[int]:
        return list(self.columns)

    @cached_property
    def _log_mask(self) -> np.ndarray:
        return np.array([name in self.log_features for name in self.features], dtype=bool)

    def transform(self, x: np.ndarray, *, missing: float = 0.0) -> np.ndarray:
        """Candidate rows (or one row) -> scaled values; unobserved ones become ``missing`` (the centre, 0)."""
        return standardize(self.prepare(x), self.centre, self.scale, missing=missing)


def fit_scaling(
    data: np.ndarray,
    features: Sequence[str],
    *,
    always_log: Sequence[str] = (),
    max_missing: float = 0.5,
    max_constant: float = 0.95,
) -> Scaling:
    """The scaling of ``data`` (rows x candidate features, NaN = unobserved); see the module."""
    used: list[int] = []
    logs: list[str] = []
    centres: list[float] = []
    scales: list[float] = []
    dropped: dict[str, str] = {}
    for j, name in enumerate(features):
        column = data[:, j]
        values = column[np.isfinite(column)]
        reason = _drop_reason(values, len(column), max_missing, max_constant)
        if reason is None:
            log = name in always_log or _heavy_tailed(values)
            if log:
                values = np.log1p(np.maximum(values, 0.0))
            centre, scale = _centre_scale(values)
            if scale is None:
                reason = "constant: no spread"
        if reason is not None:
            dropped[name] = reason
            continue
        used.append(j)
        centres.append(centre)
        scales.append(scale)
        if log:
            logs.append(name)
    return Scaling(
        features=tuple(features[j] for j in used),
        columns=tuple(used),
        log_features=tuple(logs),
        centre=np.array(centres),
        scale=np.array(scales),
        dropped=dropped,
    )


def _drop_reason(values: np.ndarray, rows: int, max_missing: float, max_constant: float) -> str | None:
    missing = 1.0 - len(values) / rows if rows else 1.0
    if missing > max_missing or not len(values):
        return f"missing for {missing:.0%} of users"
    uniques, counts = np.unique(values, return_counts=True)
    top = int(counts.argmax())
    share = counts[top] / len(values)
    if share > max_constant:
        return f"constant: {share:.0%} of users have {uniques[top]:g}"
    return None


def _centre_scale(values: np.ndarray) -> tuple[float, float | None]:
    low, median, high = np.percentile(values, (WINSOR[0], 50, WINSOR[1]))
    scale = float(np.clip(values, low, high).std())
    return float(median), (scale if scale > _TINY else None)


def _heavy_tailed(values: np.ndarray) -> bool:
    """A non-negative magnitude (not a share: some values above 1) with a long right tail.

    Shares and rates in [0, 1] are bounded, so log1p would barely reshape them: they stay linear.
    """
    return values.min() >= 0.0 and values.max() > 1.0 and _skew(values) > SKEW_FOR_LOG


def _skew(values: np.ndarray) -> float:
    centred = values - values.mean()
    m2 = float((centred**2).mean())
    return float((centred**3).mean()) / m2**1.5 if m2 > _TINY else 0.0
