"""River's online KMeans, moving the segment a :class:`~app.core.segments.mixture.Mixture` assigns.

Between fits the learner keeps the segments following the stream the way River's
``KMeans`` does: each sample moves one centre by ``halflife`` of its distance. Here
the centre moved is the segment the mixture finds most likely (per-segment spreads,
atoms, missing values), not the nearest in Euclidean terms, and only along the values
the sample has off the atoms. Spreads, atoms and weights stay as fitted until the next fit.

>>> import numpy as np
>>> from app.core.segments.mixture import grow
>>> rng = np.random.default_rng(0)
>>> z = np.concatenate([rng.normal(-2, 0.3, (100, 1)), rng.normal(2, 0.3, (100, 1))])
>>> model = MixtureKMeans(grow(z, k_max=2, rng=rng, stop_early=False)[2].mixture, features=("x",), halflife=0.5)
>>> before = model.means[:, 0].round(1).tolist()
>>> model.learn_one({"x": 3.0})
>>> model.predict_one({"x": 3.0}) == model.predict_one({"x": 2.0}), model.means[:, 0].round(1).tolist() != before
(True, True)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from river import cluster

from app.core.segments.mixture import Mixture


class MixtureKMeans(cluster.KMeans):
    """``river.cluster.KMeans`` whose assignment is ``mixture``'s; ``centers`` are the segments' expected values."""

    def __init__(self, mixture: Mixture, features: Sequence[str], halflife: float = 0.01, seed: int | None = None):
        super().__init__(n_clusters=mixture.k, halflife=halflife, seed=seed)
        self.mixture = mixture
        self.features = tuple(features)
        self.means = mixture.means.copy()

    @property
    def centers(self) -> dict[int, defaultdict]:
        expected = self.current().expected()
        out = {}
        for i, row in enumerate(expected):
            out[i] = defaultdict(float, zip(self.features, row.tolist(), strict=True))
        return out

    @centers.setter
    def centers(self, value) -> None:  # River's constructor assigns random centres: ours come from the fit
        pass

    def current(self) -> Mixture:
        """The fitted mixture with the means as learned online since."""
        return self.mixture.with_means(self.means)

    def _row(self, x: dict) -> np.ndarray:
        return np.array([x.get(name, np.nan) for name in self.features], dtype=np.float64)

    def predict_one(self, x: dict) -> int:
        return int(self._scored(self._row(x))[0].argmax())

    def learn_predict_one(self, x: dict) -> int:
        logp, cont = self._scored(self._row(x))
        segment = int(logp.argmax())
        off = np.isfinite(cont)  # seen, and off the atoms: the values a centre follows
        self.means[segment, off] += self.halflife * (cont[off] - self.means[segment, off])
        return segment

    def _scored(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Spreads, atoms and weights are fixed between fits: only the means differ from the fit's.
        return self.mixture.log_joint_row(row, self.means)

    def learn_one(self, x: dict) -> None:
        self.learn_predict_one(x)
