"""A real Prometheus server scrapes a real worker, and its HTTP API reports the traffic we sent."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from tests.kafka_harness import produce, wait_until_consumed
from tests.prometheus_harness import PrometheusServer

pytestmark = pytest.mark.integration


@pytest.fixture
def prometheus_for(tmp_path):
    servers: list[PrometheusServer] = []

    def start(worker) -> PrometheusServer:
        server = PrometheusServer(tmp_path / "prometheus", [f"127.0.0.1:{worker.env['SEGSTREAM_WEB_PORT']}"])
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


def test_prometheus_scrapes_the_worker_and_sees_the_traffic(start_worker, prometheus_for):
    worker = start_worker()
    prometheus = prometheus_for(worker)
    good = [{"user_id": f"p{n}", "type": "page_view", "ts": time.time() - 5, "event_id": f"e{n}"} for n in range(7)]
    messages = [(event["user_id"].encode(), orjson.dumps(event)) for event in good]
    messages += [(b"bad", b"{not json"), (b"bad", orjson.dumps({"user_id": "bad", "type": "page_view"}))]
    asyncio.run(produce(worker.topic("clicks"), messages))
    wait_until_consumed(worker, worker.topic("clicks"))

    def value(promql: str) -> float | None:
        result = prometheus.query(promql)
        return float(result[0]["value"][1]) if result else None

    # Every value at once: the worker counts dead letters before it counts the valid events.
    expected = {
        'segstream_events_total{job="segstream", outcome="dlq"}': 2.0,
        'segstream_events_total{job="segstream", outcome="valid"}': 7.0,
        'segstream_events_total{job="segstream", outcome="late"}': 0.0,  # there before any late event
        'sum(segstream_event_lag_seconds_count{job="segstream"})': 7.0,
        # events dated 5 s ago: every one lands at or under the 10 s bucket bound
        'segstream_event_lag_seconds_bucket{job="segstream", le="10.0"}': 7.0,
    }
    deadline = time.monotonic() + 60
    while (seen := {query: value(query) for query in expected}) != expected:
        assert time.monotonic() < deadline, f"Prometheus reports {seen}, expected {expected}"
        time.sleep(0.5)
    assert value('faust_messages_received_total{job="segstream"}') >= 9.0
