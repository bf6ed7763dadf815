"""A worker with log_format = json writes nothing but JSON objects, and no user id at info level."""

from __future__ import annotations

import asyncio
import socket

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


def test_a_malformed_request_is_one_warning_line_without_a_traceback(start_worker):
    """aiohttp logged each over-long request line at ERROR with a 20-line traceback: any client could flood it."""
    worker = start_worker()
    port = int(worker.env["SEGSTREAM_WEB_PORT"])
    for request in (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"GARBAGE\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(request)
            assert client.recv(64).startswith(b"HTTP/1.0 400")
    worker.stop()
    log = worker.log_path.read_text()
    assert "Traceback" not in log and "Error handling request" not in log, worker.log_tail()
    warnings = [line for line in log.splitlines() if "bad HTTP request from 127.0.0.1 (400)" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0] and len(warnings[0]) < 400, warnings  # the long line
