"""Faust sensors: microseconds of sensor work per consumed message, in-process.

Drives each sensor's per-message hooks as Faust's consumer and stream call them
(message in, stream event in and out, message out), on one topic and two streams:

  Monitor              Faust's default sensor, which every worker pays for anyway
  PrometheusMonitor    faust.sensors.prometheus, as setup_prometheus_sensors installs it
  FaustSensor          app/kafka/faust_sensor.py: the same metrics, labelled children cached

Alternating rounds, medians. The worker's own cost per message is in ``bench kafka``:
at one event per message it is about 130 µs, so the difference between the rows over
130 µs is the share of throughput the sensor costs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry

from app.kafka.faust_sensor import FaustSensor
from bench.common import Report

SENSORS = {
    "Monitor": lambda: Monitor(),
    "PrometheusMonitor": lambda: PrometheusMonitor(metrics=FaustMetrics.create(CollectorRegistry(), "faust")),
    "FaustSensor": lambda: FaustSensor(metrics=FaustMetrics.create(CollectorRegistry(), "faust")),
}


class _Owner:
    """A stream's task owner (the base monitor keeps a weak dict of them)."""


class _Stream:
    def __init__(self, label: str) -> None:
        self.shortlabel = f"Stream: Topic: {label}"
        self.task_owner = _Owner()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=200_000, help="messages per round and sensor")
    parser.add_argument("--rounds", type=int, default=5)


def run(args: argparse.Namespace) -> Report:
    streams = [_Stream("clicks"), _Stream("model-samples")]
    times: dict[str, list[float]] = {name: [] for name in SENSORS}
    for _ in range(args.rounds):
        for name, make in SENSORS.items():
            times[name].append(_per_message_us(make(), streams, args.messages))
    base = statistics.median(times["Monitor"])
    rows = [{
        "sensor": name, "us/message": statistics.median(samples), "over Monitor": statistics.median(samples) - base,
        "all rounds (us)": " ".join(f"{t:.2f}" for t in samples),
    } for name, samples in times.items()]  # fmt: skip
    return Report(
        title="Faust sensors: work per consumed message",
        columns=["sensor", "us/message", "over Monitor", "all rounds (us)"], rows=rows,
        notes=[f"{args.messages:,} messages per round, {args.rounds} alternating rounds, medians"],
        data={row["sensor"]: row["us/message"] for row in rows},
    )  # fmt: skip


def _per_message_us(sensor, streams: list[_Stream], messages: int) -> float:
    partitions = [TP("clicks", partition) for partition in range(4)]
    started = time.perf_counter()
    for offset in range(messages):
        tp, stream, message = partitions[offset % 4], streams[offset % 2], SimpleNamespace()
        event = SimpleNamespace(message=message)
        sensor.on_message_in(tp, offset, message)
        state = sensor.on_stream_event_in(tp, offset, stream, event)
        sensor.on_stream_event_out(tp, offset, stream, event, state)
        sensor.on_message_out(tp, offset, message)
    return (time.perf_counter() - started) / messages * 1e6
