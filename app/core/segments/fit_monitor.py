"""Watches whether the last fitted model still describes the samples (ADWIN, two signals).

Both signals are read against the *reference* model, the one fitted at the last
warm-up or drift fit, scaled as it was then. The online model drifts along with
the data, so it cannot tell that the population moved; the frozen reference can.

- **Fit**: each sample's distance to its nearest reference centroid. Drift when
  the fit got more than ``tolerance`` (a share) worse than its baseline: a new
  kind of user far from every segment, or segments spreading out.
- **Feature means**: each scaled feature on its own. Drift when one feature's mean
  moved by more than ``shift`` reference spreads from its baseline, in either
  direction: the population moved *along* the segments (prices up, more mobile),
  which leaves the distances as they were. 0.2 spreads is Cohen's "small effect".

A signal's baseline is its mean once ``cooldown`` samples have passed since the fit.
It reports drift once its ADWIN has detected a change since then and the mean of
ADWIN's window (the samples since the change) clears the limit by ``Z`` standard
errors, over at least ``MIN_WINDOW`` samples. River's ADWIN starts an empty window
at the update after a detection: judged on the next sample alone, a fit that got
*better* (users gaining evidence come closer to their centroids) followed by one
far sample read as drift. Each feature's ADWIN runs at ``delta`` over the number of
features, so that watching more features does not raise more false alarms.

>>> import numpy as np
>>> monitor = FitMonitor(mean=np.zeros(1), std=np.ones(1), centroids=np.array([[0.0]]), cooldown=100)
>>> rng = np.random.default_rng(0)
>>> before = [monitor.observe(np.array([rng.normal(0, 1)])) for _ in range(1_000)]
>>> after = [monitor.observe(np.array([rng.normal(3, 1)])) for _ in range(1_000)]
>>> any(before), any(after), monitor.signal
(False, True, 'distance_to_centroid')
>>> monitor = FitMonitor(mean=np.zeros(2), std=np.ones(2), centroids=np.array([[0.0, -5.0], [0.0, 5.0]]),
...                      cooldown=100, features=("price", "mobile"))
>>> side = lambda: rng.choice([-5.0, 5.0])
>>> before = [monitor.observe(np.array([rng.normal(0, 1), side()])) for _ in range(1_000)]
>>> moved = [monitor.observe(np.array([rng.normal(0.6, 1), side()])) for _ in range(1_000)]
>>> any(before), any(moved), monitor.signal, round(monitor.shift, 1)
(False, True, 'feature_mean:price', 0.6)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from river import drift

from app.core.segments.model import standardize

MIN_WINDOW = 30  # samples in ADWIN's window before its mean is judged
Z = 3.0  # standard errors by which that mean must clear the limit
SHIFT = 0.2  # reference spreads a feature's mean may move before it is drift


class _Signal:
    """One watched value: ADWIN, its baseline, and whether a change was seen since."""

    __slots__ = ("adwin", "baseline", "changed")

    def __init__(self, delta: float) -> None:
        self.adwin = drift.ADWIN(delta=delta)
        self.baseline: float | None = None
        self.changed = False

    @property
    def mean(self) -> float:
        return float(self.adwin.estimation)

    def update(self, value: float, at_baseline: bool) -> None:
        self.adwin.update(value)
        if at_baseline:
            self.baseline = self.mean
        elif self.baseline is not None:
            self.changed = self.changed or self.adwin.drift_detected

    def error(self) -> float | None:
        """The standard error of the window's mean; None below MIN_WINDOW samples."""
        n = self.adwin.width
        if n < MIN_WINDOW:
            return None
        return math.sqrt(max(self.adwin.variance, 0.0)) / n  # River's variance: summed squares about the mean


class FitMonitor:
    """ADWIN over the distance of samples to a frozen reference model, and over each feature's mean."""

    def __init__(
        self,
        mean: np.ndarray,
        std: np.ndarray,
        centroids: np.ndarray,
        *,
        cooldown: int,
        tolerance: float = 0.1,
        delta: float = 0.002,
        features: Sequence[str] = (),
        shift: float = SHIFT,
    ) -> None:
        self.cooldown = cooldown
        self.tolerance = tolerance
        self.shift_limit = shift
        self._mean, self._std, self._centroids = mean, std, centroids
        self._fit = _Signal(delta)
        self._names = tuple(features)
        self._features = [_Signal(delta / len(features)) for _ in features]
        self._seen = 0
        self.signal: str | None = None  # which signal reported drift
        self.shift: float | None = None  # for a feature signal: how far its mean moved, in spreads

    @property
    def baseline(self) -> float | None:
        """The fit's baseline: mean distance to the nearest reference centroid."""
        return self._fit.baseline

    @property
    def current(self) -> float:
        """The fit now: ADWIN's mean distance over its window."""
        return self._fit.mean

    @property
    def change_detected(self) -> bool:
        """Whether the fit's ADWIN saw a change, in either direction, at the last sample."""
        return self._fit.adwin.drift_detected

    def observe(self, x: np.ndarray) -> bool:
        """Feed one sample; True once drift is seen (it stays True until a new monitor)."""
        if self.signal is not None:
            return True
        z = standardize(x, self._mean, self._std)
        self._seen += 1
        at_baseline = self._seen == self.cooldown
        self._fit.update(self._distance(z), at_baseline)
        for signal, value in zip(self._features, z.tolist()):
            signal.update(value, at_baseline)
        if self._seen <= self.cooldown:
            return False
        if self._fit.changed and self._clears(self._fit, self._fit.baseline * (1.0 + self.tolerance)):
            self.signal = "distance_to_centroid"
        for name, signal in zip(self._names, self._features):
            if self.signal is None and signal.changed and self._moved(signal):
                self.signal, self.shift = f"feature_mean:{name}", signal.mean - signal.baseline
        return self.signal is not None

    def _distance(self, z: np.ndarray) -> float:
        return float(np.sqrt(((self._centroids - z) ** 2).sum(axis=1).min()))

    @staticmethod
    def _clears(signal: _Signal, limit: float) -> bool:
        error = signal.error()
        return error is not None and signal.mean - Z * error > limit

    def _moved(self, signal: _Signal) -> bool:
        error = signal.error()
        return error is not None and abs(signal.mean - signal.baseline) - Z * error > self.shift_limit
