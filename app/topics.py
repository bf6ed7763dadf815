"""Every topic segstream reads or writes, declared once.

Values are raw bytes: segstream decodes and validates them itself, so a bad
message reaches ``clicks-dlq`` instead of being skipped by the framework.
"""

from __future__ import annotations

from app.main import app, settings

_RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}

# Partitions: clicks and the user-state changelog must match (co-partitioned by user_id).
clicks = app.topic(settings.topic("clicks"), partitions=settings.partitions, **_RAW)
clicks_dlq = app.topic(settings.topic("clicks-dlq"), partitions=settings.partitions, **_RAW)
segment_changes = app.topic(settings.topic("segment-changes"), partitions=settings.partitions, **_RAW)
segment_drift = app.topic(settings.topic("segment-drift"), partitions=1, **_RAW)
# One partition: the learner is a single global model.
model_samples = app.topic(settings.topic("model-samples"), partitions=1, **_RAW)
