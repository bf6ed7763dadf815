"""SIGTERM stops the worker within ``shutdown_timeout_s``, even with the broker gone mid-stream."""

from __future__ import annotations

import asyncio
import signal
import time

import orjson
import pytest

from tests.kafka_harness import OwnBroker, Worker, produce, wait_until_consumed

pytestmark = pytest.mark.integration

TIMEOUT_S = 10.0
EXIT_SLACK_S = 10.0  # the interpreter's own exit after the watchdog or the stop: a hang guard, not a speed bound


@pytest.mark.timeout(240)
def test_sigterm_with_the_broker_gone_stops_the_worker_within_the_shutdown_timeout(tmp_path):
    broker = OwnBroker(tmp_path).start()
    worker = Worker(tmp_path, SEGSTREAM_BROKER=f"kafka://{broker.bootstrap}",
                    SEGSTREAM_SHUTDOWN_TIMEOUT_S=str(TIMEOUT_S))  # fmt: skip
    now = time.time()
    clicks = [(f"s{i}".encode(), orjson.dumps({"user_id": f"s{i}", "type": "add_to_cart", "ts": (now - 60) * 1000,
                                               "event_id": f"s{i}-cart", "value": 5.0})) for i in range(200)]  # fmt: skip
    try:
        worker.start()
        asyncio.run(produce(worker.topic("clicks"), clicks, broker.bootstrap))
        wait_until_consumed(worker, worker.topic("clicks"), timeout=120)
        broker.stop()  # commits, flushes and the group leave now wait on a broker that is not there
        time.sleep(3.0)
        started = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        worker.process.wait(TIMEOUT_S + EXIT_SLACK_S)  # raises TimeoutExpired: the stop hung
        stopped_after = time.monotonic() - started
        assert worker.process.returncode in (0, 1), worker.log_tail()
        if worker.process.returncode == 1:  # the watchdog ended it: it says so in one line
            assert f"not stopped {TIMEOUT_S:g} s after SIGTERM" in worker.log_tail(), worker.log_tail()
        print(f"stopped {stopped_after:.1f} s after SIGTERM, exit status {worker.process.returncode}")
    finally:
        worker.stop(signal.SIGKILL)
        broker.stop()
