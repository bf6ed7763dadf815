"""Watches how well the last fitted model still describes the samples (ADWIN on distance).

The signal is each sample's distance to its nearest centroid of the *reference*
model, the one fitted at the last refit, scaled as it was then. The online model
drifts along with the data, so it cannot tell that the population moved; the
frozen reference can. Drift is reported when ADWIN has seen the signal change and
its current mean is more than ``tolerance`` above the baseline, the mean measured
once ``cooldown`` samples have passed since the fit.

>>> import numpy as np
>>> monitor = FitMonitor(mean=np.zeros(1), std=np.ones(1), centroids=np.array([[0.0]]), cooldown=100)
>>> rng = np.random.default_rng(0)
>>> before = [monitor.observe(np.array([rng.normal(0, 1)])) for _ in range(1_000)]
>>> after = [monitor.observe(np.array([rng.normal(3, 1)])) for _ in range(1_000)]
>>> any(before), any(after)
(False, True)
"""

from __future__ import annotations

import numpy as np
from river import drift

from app.core.model import standardize


class FitMonitor:
    """ADWIN over the distance of samples to a frozen reference model."""

    def __init__(
        self,
        mean: np.ndarray,
        std: np.ndarray,
        centroids: np.ndarray,
        *,
        cooldown: int,
        tolerance: float = 0.1,
        delta: float = 0.002,
    ) -> None:
        self.cooldown = cooldown
        self.tolerance = tolerance
        self.delta = delta
        self._mean, self._std, self._centroids = mean, std, centroids
        self._adwin = drift.ADWIN(delta=delta)
        self._seen = 0
        self._changed = False
        self.baseline: float | None = None

    @property
    def current(self) -> float:
        return float(self._adwin.estimation)

    def distance(self, x: np.ndarray) -> float:
        """Distance from a raw (log-transformed, unscaled) sample to the nearest reference centroid."""
        z = standardize(x, self._mean, self._std)
        return float(np.sqrt(((self._centroids - z) ** 2).sum(axis=1).min()))

    def observe(self, x: np.ndarray) -> bool:
        """Feed one sample; True once the fit has got worse (stays True until a new monitor)."""
        self._adwin.update(self.distance(x))
        self._seen += 1
        if self._seen == self.cooldown:
            self.baseline = self.current
            return False
        if self.baseline is None:
            return False
        self._changed = self._changed or self._adwin.drift_detected
        return self._changed and self.current > self.baseline * (1.0 + self.tolerance)
