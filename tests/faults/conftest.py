"""Integration tests need the real broker and Redis from ``scripts/services start``."""

from __future__ import annotations

import pytest

from tests.kafka_harness import Worker, broker_is_up


@pytest.fixture(scope="session", autouse=True)
def _broker():
    if not broker_is_up():
        pytest.fail("no Kafka broker on 127.0.0.1:9092: run `scripts/services start` (make test does)")


@pytest.fixture
def start_worker(tmp_path):
    """Start workers with isolated topics; every one is stopped at the end of the test."""
    workers: list[Worker] = []

    def start(**env: str) -> Worker:
        worker = Worker(tmp_path, **env).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
