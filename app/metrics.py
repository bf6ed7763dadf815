"""Prometheus metrics of the worker, served at /metrics on SEGSTREAM_WEB_PORT.

Labels never carry user ids.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

registry = CollectorRegistry()

events = Counter(
    "segstream_events", "Click events by outcome: ok, late, duplicate, dlq.", ["outcome"], registry=registry
)
segment_changes = Counter("segstream_segment_changes", "Segment-change events published.", ["kind"], registry=registry)
triggers = Counter("segstream_triggers", "Trigger events published.", ["trigger"], registry=registry)
state_bytes = Counter("segstream_state_bytes_written", "Bytes of user state written to the changelog.", registry=registry)
model_version = Gauge("segstream_model_version", "Version of the model this worker predicts with.", registry=registry)
drifts = Counter("segstream_drift_detections", "Drift detections of the learner.", registry=registry)
