"""Shared fixtures: event builders for the pure core."""

from __future__ import annotations

import pytest

from app.core.events.decode import ClickEvent

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture
def t0() -> float:
    return T0


def click(user: str = "u1", kind: str = "page_view", ts: float = T0, **fields) -> ClickEvent:
    return ClickEvent(user, kind, ts, **fields)


@pytest.fixture(scope="session")
def broker() -> None:
    """The real broker from ``scripts/services start``; integration and fault tests need it."""
    from tests.kafka_harness import broker_is_up

    if not broker_is_up():
        pytest.fail("no Kafka broker on 127.0.0.1:9092: run `scripts/services start` (make test does)")


@pytest.fixture
def start_worker(broker, tmp_path):
    """Start workers with isolated topics; every one is stopped at the end of the test."""
    from tests.kafka_harness import Worker

    workers = []

    def start(**env: str):
        worker = Worker(tmp_path, **env)
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()
