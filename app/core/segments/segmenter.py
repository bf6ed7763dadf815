"""Segment assignment: vectorised prediction, then hysteresis and minimum dwell.

The segmenter predicts for a whole batch at once with numpy against the current
:class:`~app.core.segments.model.ModelSnapshot`, then walks the batch in order to decide,
per user, whether membership changes. A user near a boundary does not flap: a
move needs the new segment to be clearly better and the user to have stayed
``min_dwell_s`` of event time in the current segment. "Better" depends on the model:
for a mixture (:mod:`app.core.segments.mixture`, the snapshot carries one), the new segment
must be at least ``min_odds`` times as likely for the user as the current one; for a
distance model, its centroid must be ``hysteresis`` closer.

>>> from app.core.segments.model import ModelSnapshot
>>> features = ("conversion", "search_share")
>>> snap = ModelSnapshot(1, features, (), (0.0, 0.0), (1.0, 1.0), ((0.0, 0.0), (4.0, 0.0)),
...                      ("c1", "c2"), ("rarely buys", "converts"), 100, 0.0)
>>> seg = Segmenter(SegmenterConfig(features=features, log_features=(), min_dwell_s=60.0))
>>> seg.use(snap)
>>> member = Membership()
>>> scores = seg.scores([[0.1, 0.0], [2.1, 0.0], [3.9, 0.0]])
>>> [seg.decide(member, row, ts=t, eligible=True) for row, t in zip(scores, (0.0, 30.0, 90.0))]
['c1', None, 'c2']
>>> member.segment, member.since_ts, member.seq
('c2', 90.0, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from app.core.features import MODEL_FEATURES, FeatureConfig, UserFeatures, catalogue
from app.core.segments.mixture import Mixture
from app.core.segments.model import NEW_SEGMENT, ModelSnapshot, log_columns, standardize

# The candidates: the catalogue's model inputs. The learner drops, per fit, those the data
# leaves missing or constant, and log-transforms the skewed ones on top of these.
DEFAULT_FEATURES = MODEL_FEATURES
DEFAULT_LOG_FEATURES = ("avg_order_value", "views_per_session", "mean_dwell_s")


@dataclass(frozen=True)
class SegmenterConfig:
    """Which features the model reads and how membership may change."""

    features: tuple[str, ...] = DEFAULT_FEATURES
    log_features: tuple[str, ...] = DEFAULT_LOG_FEATURES
    # Evidence before a user leaves segment "new": min_events over min_sessions, or
    # min_purchases purchases (0: purchases are no shortcut). See Engine._has_evidence.
    min_events: int = 5
    min_sessions: int = 2
    min_purchases: int = 1
    hysteresis: float = 0.2  # distance models: a move needs the new centroid this much closer
    min_odds: float = 4.0  # mixtures: a move needs the new segment this many times as likely
    min_dwell_s: float = 3_600.0  # event time in a segment before the next move
    sample_rate: float = 0.1  # share of user updates the learner sees
    redecide_per_batch: int = 250  # users re-decided per batch after a new fit (app/core/segments/sweep.py)

    def __post_init__(self) -> None:
        vector_reader(self.features)  # raises on unknown names
        if not 0.0 <= self.hysteresis < 1.0:
            raise ValueError("hysteresis must be in [0, 1)")
        if self.min_odds < 1.0:
            raise ValueError("min_odds must be at least 1")
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ValueError("sample_rate must be in [0, 1]")
        if self.redecide_per_batch < 1:
            raise ValueError("redecide_per_batch must be at least 1")


class Membership:
    """A user's cluster segment, when it was entered and how many changes so far."""

    __slots__ = ("segment", "since_ts", "seq", "model_version")

    def __init__(self, segment: str = NEW_SEGMENT, since_ts: float = 0.0, seq: int = 0, model_version: int = 0):
        self.segment = segment
        self.since_ts = since_ts
        self.seq = seq
        self.model_version = model_version

    def to_record(self) -> list:
        return [self.segment, self.since_ts, self.seq, self.model_version]

    @classmethod
    def from_record(cls, record: list) -> Membership:
        return cls(*record)

    @staticmethod
    def model_version_in(record: list) -> int:
        """The model version of a membership record, without decoding it (early records lack it: 0).

        >>> Membership.model_version_in(Membership("c1", 5.0, 2, 7).to_record()), Membership.model_version_in(["c1"])
        (7, 0)
        """
        return record[3] if len(record) > 3 else 0


def vector_reader(features: Sequence[str], cfg: FeatureConfig | None = None) -> Callable[[UserFeatures], list[float]]:
    """A function giving the raw (unscaled) values of ``features`` for one user, NaN = unobserved.

    The values are the feature catalogue's (:mod:`app.core.features.catalogue`), as of
    the user's latest event.

    >>> from app.core.features import MODEL_FEATURES, FeatureConfig, UserFeatures, catalogue
    >>> vector_reader(("conversion", "mobile_share"))(UserFeatures())
    [0.0, nan]
    """
    try:
        return catalogue(cfg or FeatureConfig()).vector_reader(features)
    except ValueError as exc:
        raise ValueError(f"unknown segmenter features: {exc}") from None


class Segmenter:
    """Predicts with one model snapshot and decides membership changes."""

    def __init__(self, config: SegmenterConfig) -> None:
        self.config = config
        self.snapshot: ModelSnapshot | None = None
        self._columns: list[int] = []
        self._log_mask: np.ndarray | None = None
        self._mean = self._std = self._centroids = None
        self._mixture: Mixture | None = None
        self._index: dict[str, int] = {}

    def use(self, snapshot: ModelSnapshot) -> None:
        """Switch to ``snapshot``; it may read a different feature order than the config."""
        missing = [name for name in snapshot.features if name not in self.config.features]
        if missing:
            raise ValueError(f"model v{snapshot.version} reads features this worker does not compute: {missing}")
        self.snapshot = snapshot
        self._columns = [self.config.features.index(name) for name in snapshot.features]
        self._log_mask = np.array([name in snapshot.log_features for name in snapshot.features], dtype=bool)
        self._mean = np.asarray(snapshot.mean, dtype=np.float64)
        self._std = np.asarray(snapshot.std, dtype=np.float64)
        self._centroids = np.asarray(snapshot.centroids, dtype=np.float64)
        self._mixture = Mixture.from_dict(snapshot.mixture) if snapshot.mixture and snapshot.clustered else None
        self._index = {segment: i for i, segment in enumerate(snapshot.segment_ids)}

    @property
    def clustered(self) -> bool:
        """False until a snapshot with centroids is in use (an RFM-only one has none)."""
        return self.snapshot is not None and self.snapshot.clustered

    def scale(self, rows: Sequence[Sequence[float]], *, missing: float = 0.0) -> np.ndarray:
        """Rows in config feature order -> z-scores in model feature order, NaN -> ``missing``."""
        x = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)[:, self._columns]
        return standardize(log_columns(x, self._log_mask), self._mean, self._std, missing=missing)

    def scores(self, rows: Sequence[Sequence[float]]) -> np.ndarray:
        """How badly each row fits each segment, lower is better: shape (rows, segments).

        A mixture's score is -log P(segment | row), unobserved values left out; a distance
        model's is the Euclidean distance to the centroid.
        """
        if self._mixture is not None:
            logp = self._mixture.log_joint(self.scale(rows, missing=np.nan))
            top = logp.max(axis=1, keepdims=True)
            return np.log(np.exp(logp - top).sum(axis=1, keepdims=True)) + top - logp
        z = self.scale(rows)
        diff = z[:, None, :] - self._centroids[None, :, :]
        return np.sqrt(np.einsum("nkd,nkd->nk", diff, diff))

    def settled(self, member: Membership, ts: float) -> bool:
        """True when no prediction can move ``member`` at ``ts``: it is inside its minimum dwell.

        The engine skips the distances of settled users; :meth:`decide` would keep them.
        """
        return ts - member.since_ts < self.config.min_dwell_s and member.segment in self._index

    def decide(self, member: Membership, scores: np.ndarray, *, ts: float, eligible: bool) -> str | None:
        """Apply one row of :meth:`scores` to ``member``; returns the new segment id if it changed."""
        ids = self.snapshot.segment_ids
        best = int(scores.argmin())
        current = self._index.get(member.segment)
        if current is None:
            # "new", or a segment this model no longer has: join the nearest one.
            if member.segment == NEW_SEGMENT and not eligible:
                return None
        elif best == current:
            return None
        elif ts - member.since_ts < self.config.min_dwell_s:
            return None
        elif not self._clearly_better(scores[best], scores[current]):
            return None
        member.segment = ids[best]
        member.since_ts = ts
        member.seq += 1
        member.model_version = self.snapshot.version
        return member.segment

    def _clearly_better(self, best: float, current: float) -> bool:
        if self._mixture is not None:  # scores are -log posteriors: their difference is the log odds
            return current - best >= np.log(self.config.min_odds)
        return best < (1.0 - self.config.hysteresis) * current
