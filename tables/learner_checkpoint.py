"""``learner_checkpoint``: the learner's pickled state, so a restart resumes learning and versions."""

from __future__ import annotations

from app.main import app

LEARNER = b"learner"

learner_checkpoint = app.Table(
    "learner_checkpoint",
    partitions=1,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    use_partitioner=True,
    help="Key 'learner': pickle of app.core.learner.Learner, written at every model publish.",
)
