"""RFM scores 1 to 5, from streaming quintiles of recency, frequency and monetary value.

Method: the learner keeps the 20th, 40th, 60th and 80th percentiles of each of
``recency_days``, ``frequency`` and ``monetary`` over a hash-chosen sample of
updates of users who have bought at least once, with River's
``stats.Quantile`` (the P² algorithm: five markers per quantile, constant
memory, no stored values). The four cut points of each measure ship with the
model snapshot, so every worker and ``replay`` score the same way.

A score counts the cut points a user is better than, plus one: more purchases
and more money score higher; for recency, fewer days since the last purchase
score higher. Users who have never bought have no scores (``null``).

>>> quintiles = RfmQuintiles()
>>> for n in range(1, 101):
...     quintiles.learn(recency_days=float(n), frequency=float(n % 10 + 1), monetary=float(n * 10))
>>> edges = quintiles.edges()
>>> rfm_scores(edges, recency_days=3.0, frequency=10.0, monetary=995.0)
(5, 5, 5)
>>> rfm_scores(edges, recency_days=99.0, frequency=1.0, monetary=15.0)
(1, 1, 1)
>>> rfm_scores(edges, recency_days=None, frequency=0.0, monetary=0.0)
(None, None, None)
"""

from __future__ import annotations

from bisect import bisect_left

from river import stats

QUINTILES = (0.2, 0.4, 0.6, 0.8)
MEASURES = ("recency_days", "frequency", "monetary")
MIN_SAMPLES = 50  # cut points before this many buyers would be noise

Edges = dict[str, tuple[float, ...]]


class RfmQuintiles:
    """Streaming cut points of the three RFM measures."""

    def __init__(self, min_samples: int = MIN_SAMPLES) -> None:
        self.min_samples = min_samples
        self._quantiles = {m: [stats.Quantile(q) for q in QUINTILES] for m in MEASURES}
        self._samples = 0

    def learn(self, *, recency_days: float, frequency: float, monetary: float) -> None:
        for measure, value in zip(MEASURES, (recency_days, frequency, monetary), strict=True):
            for quantile in self._quantiles[measure]:
                quantile.update(value)
        self._samples += 1

    @property
    def samples(self) -> int:
        return self._samples

    def edges(self) -> Edges | None:
        """The cut points of each measure, ascending; None until ``min_samples`` buyers."""
        if self._samples < self.min_samples:
            return None
        return {m: tuple(sorted(float(q.get()) for q in self._quantiles[m])) for m in MEASURES}


def rfm_scores(
    edges: Edges | None, *, recency_days: float | None, frequency: float, monetary: float
) -> tuple[int | None, int | None, int | None]:
    """(R, F, M), each 1 to 5; all None for users who never bought or before cut points exist."""
    if edges is None or recency_days is None or frequency <= 0:
        return None, None, None
    recency = 1 + len(edges["recency_days"]) - bisect_left(edges["recency_days"], recency_days)
    return (
        recency,
        1 + bisect_left(edges["frequency"], frequency),
        1 + bisect_left(edges["monetary"], monetary),
    )

