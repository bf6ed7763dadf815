"""The cached sensor exports exactly what Faust's PrometheusMonitor exports, rebalances included."""

from __future__ import annotations

from types import SimpleNamespace

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry

from app.kafka.faust_sensor import FaustSensor


class _Owner:
    """A stream's task owner: the base monitor keys a weak dict by it."""


class _Stream:
    def __init__(self, label: str) -> None:
        self.shortlabel = f"Stream: Topic: {label}"
        self.task_owner = _Owner()


def _drive(monitor, streams) -> None:
    """Messages on two topics and three partitions through two streams, a rebalance half-way."""
    for round_ in range(2):
        for offset in range(50):
            tp = TP("clicks" if offset % 3 else "model-samples", offset % 3)
            message = SimpleNamespace()
            monitor.on_message_in(tp, offset + 100 * round_, message)
            stream = streams[offset % 2]
            state = monitor.on_stream_event_in(tp, offset, stream, SimpleNamespace(message=message))
            monitor.on_stream_event_out(tp, offset, stream, SimpleNamespace(message=message), state)
            if offset % 5:
                monitor.on_message_out(tp, offset, message)
        if round_ == 0:  # Faust clears the per-topic and per-partition series at a rebalance
            app = SimpleNamespace(rebalancing_count=1)
            state = monitor.on_rebalance_start(app)
            monitor.on_rebalance_return(app, state)
            monitor.on_rebalance_end(app, state)


def _samples(registry: CollectorRegistry) -> dict:
    # the runtime histogram measures wall time: compare its count, not its buckets
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.startswith(("faust_events_runtime_ms_bucket", "faust_events_runtime_ms_sum",
                                       "faust_rebalance_done"))
        and not sample.name.endswith("_created")
    }  # fmt: skip


def test_the_cached_sensor_exports_what_faust_exports():
    streams = [_Stream("clicks"), _Stream("model-samples")]
    faust_registry, ours_registry = CollectorRegistry(), CollectorRegistry()
    _drive(PrometheusMonitor(metrics=FaustMetrics.create(faust_registry, "faust")), streams)
    _drive(FaustSensor(metrics=FaustMetrics.create(ours_registry, "faust")), streams)
    ours = _samples(ours_registry)
    assert ours == _samples(faust_registry)
    assert ours[("faust_messages_received_per_topic_total", (("topic", "clicks"),))] > 0  # counted after the rebalance
