"""Prometheus metrics of the worker, served at /metrics on SEGSTREAM_WEB_PORT.

Labels never carry user ids.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

registry = CollectorRegistry()

events = Counter(
    "segstream_events", "Click events by outcome: ok, late, duplicate, dlq.", ["outcome"], registry=registry
)
segment_changes = Counter("segstream_segment_changes", "Segment-change events published.", ["kind"], registry=registry)
triggers = Counter("segstream_triggers", "Trigger events published.", ["trigger"], registry=registry)
state_bytes = Counter("segstream_state_bytes_written", "Bytes of user state written to the changelog.", registry=registry)
model_version = Gauge("segstream_model_version", "Version of the model this worker predicts with.", registry=registry)
drifts = Counter("segstream_drift_detections", "Drift detections of the learner.", registry=registry)

profile_writes = Counter(
    "segstream_profile_writes", "Profile writes to Redis: written, or refused as older than the stored one.",
    ["outcome"], registry=registry,
)  # fmt: skip
redis_errors = Counter("segstream_redis_errors", "Failed or timed-out Redis calls, by operation.", ["op"],
                       registry=registry)  # fmt: skip
redis_write_seconds = Histogram(
    "segstream_redis_write_seconds", "Seconds per pipelined profile write (one round trip per chunk).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0), registry=registry,
)  # fmt: skip
profile_backlog = Gauge("segstream_profile_backlog", "Users whose profile waits to be written to Redis.",
                        registry=registry)  # fmt: skip


def observe_profiles(what: str, value: float) -> None:
    """The profile writer's measurements (app/profile_writer.py) as metrics."""
    if what in ("written", "refused"):
        profile_writes.labels(what).inc(value)
    elif what == "error":
        redis_errors.labels("write").inc(value)
    elif what == "seconds":
        redis_write_seconds.observe(value)
    elif what == "backlog":
        profile_backlog.set(value)

webhook_deliveries = Counter(
    "segstream_webhook_deliveries",
    "Webhook attempts by outcome: delivered, retried, disabled (410), dead_lettered (to webhooks-dlq).",
    ["outcome"], registry=registry,
)  # fmt: skip
