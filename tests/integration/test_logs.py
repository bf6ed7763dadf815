"""A worker with log_format = json writes nothing but JSON objects, and no user id at info level."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.kafka_harness import produce, wait_until_consumed

pytestmark = pytest.mark.integration


def test_json_logs_are_one_object_a_line_without_user_ids(start_worker):
    worker = start_worker(SEGSTREAM_LOG_FORMAT="json")
    user = "secret-user-4711"
    event = {"user_id": user, "type": "page_view", "ts": 1_767_225_600, "event_id": "e1"}
    asyncio.run(produce(worker.topic("clicks"), [(user.encode(), orjson.dumps(event)), (b"x", b"not json")]))
    wait_until_consumed(worker, worker.topic("clicks"))
    worker.stop()
    lines = [line for line in worker.log_path.read_text().splitlines() if line.strip()]
    records = [orjson.loads(line) for line in lines]  # fails on any line that is not JSON
    assert {"ts", "level", "logger", "message"} <= set(records[0])
    assert any("Ready" in record["message"] for record in records)
    assert not any(user in record["message"] for record in records if record["level"] in ("info", "warning"))
