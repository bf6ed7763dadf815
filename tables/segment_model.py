"""``model_by_name``: the published segment model, read by every worker.

A GlobalTable: every worker consumes its whole changelog (the compacted
``segment-model`` stream), so each one predicts with the latest snapshot.
"""

from __future__ import annotations

from app.main import app

CURRENT = b"current"

model_by_name = app.GlobalTable(
    "segment_model",
    partitions=1,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    use_partitioner=True,
    help="Key 'current': the latest model snapshot (tables.codecs.encode_model).",
)
