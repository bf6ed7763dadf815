"""Prometheus metrics of the worker, served at /metrics on SEGSTREAM_WEB_PORT.

Labels never carry user ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cache

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

registry = CollectorRegistry()
CONTENT_TYPE = CONTENT_TYPE_LATEST.split(";")[0]  # the text format, as both web servers send it


def scrape() -> bytes:
    """This process's metrics in the Prometheus text format."""
    return generate_latest(registry)

events = Counter(
    "segstream_events", "Click events by outcome: valid, late, duplicate, redelivered, dlq.", ["outcome"], registry=registry
)
segment_changes = Counter("segstream_segment_changes", "Segment-change events published.", ["kind"], registry=registry)
triggers = Counter("segstream_triggers", "Trigger events published.", ["trigger"], registry=registry)
records_sent = Counter(
    "segstream_records_sent", "Records written as whole batches (changelog, segment-changes, triggers), by topic.",
    ["topic"], registry=registry,
)  # fmt: skip


def count_sent(topic: str, records: int) -> None:
    records_sent.labels(topic).inc(records)


state_bytes = Counter("segstream_state_bytes_written", "Bytes of user state written to the changelog.", registry=registry)
model_version = Gauge("segstream_model_version", "Version of the model this worker predicts with.", registry=registry)
model_k = Gauge("segstream_model_k", "Cluster segments of the model this worker predicts with (0: none yet).",
                registry=registry)  # fmt: skip
model_silhouette = Gauge("segstream_model_silhouette", "Silhouette of the model's clusters when k was chosen (-1 to 1).",
                         registry=registry)  # fmt: skip


def observe_model(snapshot) -> None:
    """The version, k and silhouette of the model now predicted with (an ``app.core.segments.model.ModelSnapshot``)."""
    model_version.set(snapshot.version)
    model_k.set(len(snapshot.segment_ids))
    selection = snapshot.selection or {}
    if selection.get("silhouette") is not None:
        model_silhouette.set(selection["silhouette"])
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
profile_backlog = Gauge("segstream_profile_backlog", "User-state changelog records whose profile waits to be written to Redis.",
                        registry=registry)  # fmt: skip


def observe_profiles(what: str, value: float) -> None:
    """The profile materialiser's measurements (app/redis/materialiser.py) as metrics."""
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


class BulkHistogram:
    """A Prometheus histogram fed a whole batch at once with numpy, not one ``observe`` per event.

    >>> registry_ = CollectorRegistry()
    >>> lag = BulkHistogram("lag_seconds", "Lag.", (1.0, 10.0), registry_)
    >>> lag.observe_many(np.array([0.5, 1.0, 3.0, 42.0]))
    >>> registry_.get_sample_value("lag_seconds_bucket", {"le": "1.0"}), registry_.get_sample_value("lag_seconds_count")
    (2.0, 4.0)
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self._bounds = np.asarray(buckets, dtype=float)
        self._counts = np.zeros(len(buckets) + 1, dtype=np.int64)  # the last one is +Inf
        self._sum = 0.0
        registry.register(self)

    def observe_many(self, values: np.ndarray) -> None:
        if len(values):
            # "le" buckets: bucket i holds bounds[i-1] < value <= bounds[i]
            self._counts += np.bincount(np.searchsorted(self._bounds, values, side="left"), minlength=len(self._counts))
            self._sum += float(values.sum())

    def collect(self):
        cumulative = [float(count) for count in np.cumsum(self._counts)]
        edges = [str(float(bound)) for bound in self._bounds] + ["+Inf"]
        yield HistogramMetricFamily(self.name, self.documentation, buckets=list(zip(edges, cumulative)),
                                    sum_value=self._sum)  # fmt: skip


batch_events = Histogram(
    "segstream_batch_events", "Click events per batch the worker processes.",
    buckets=(1, 10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 20_000), registry=registry,
)  # fmt: skip
batch_seconds = Histogram(
    "segstream_batch_seconds", "Seconds to process one batch: decode, fold, decide, publish.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0), registry=registry,
)  # fmt: skip
event_lag_seconds = BulkHistogram(
    "segstream_event_lag_seconds", "Processing time minus event time, per valid event.",
    (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3_600.0, 86_400.0), registry,
)  # fmt: skip


class CallbackGauge:
    """A labelled gauge read from its owner at scrape time, so the hot path updates nothing here.

    >>> registry_ = CollectorRegistry()
    >>> users = CallbackGauge("users", "Users.", ("kind", "segment"), registry_)
    >>> users.follow(lambda: [(("cluster", "s1"), 3)])
    >>> registry_.get_sample_value("users", {"kind": "cluster", "segment": "s1"})
    3.0
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str], registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self._read: Callable[[], Iterable[tuple[Sequence[str], float]]] = lambda: ()
        registry.register(self)

    def follow(self, read: Callable[[], Iterable[tuple[Sequence[str], float]]]) -> None:
        self._read = read

    def collect(self):
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for label_values, value in self._read():
            family.add_metric(list(label_values), float(value))
        yield family


segment_users = CallbackGauge(
    "segstream_segment_users", "Users per segment among this worker's states; sum over workers for the whole.",
    ("kind", "segment"), registry,
)  # fmt: skip


@cache
def faust_monitor():
    """Faust's own Prometheus sensor (consumer, producer, tables, rebalances), as ``faust_*`` metrics."""
    from faust.sensors.prometheus import FaustMetrics

    from app.kafka.faust_sensor import FaustSensor

    return FaustSensor(metrics=FaustMetrics.create(registry, "faust"))


# Every known label value starts at 0, so rate() and dashboards see a series before the first event.
for _outcome in ("valid", "late", "duplicate", "redelivered", "dlq"):
    events.labels(_outcome)
for _kind in ("cluster", "rule"):
    segment_changes.labels(_kind)
for _outcome in ("written", "refused"):
    profile_writes.labels(_outcome)
for _op in ("write", "read"):
    redis_errors.labels(_op)
for _outcome in ("delivered", "retried", "disabled", "dead_lettered"):
    webhook_deliveries.labels(_outcome)
