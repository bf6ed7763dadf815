"""Webhook retries pending in their topics survive a worker restart: each event still arrives."""

from __future__ import annotations

import asyncio
import base64
import time

import orjson
import pytest

from tests.kafka_harness import Worker, produce, read_all, wait_until_consumed
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.integration

KEY = b"restart key"


def test_pending_retries_are_delivered_after_a_restart(tmp_path):
    with Receiver({"/flaky": KEY}, hang_s=2.0) as receiver:
        config = tmp_path / "segstream.toml"
        config.write_text(f"""
webhook_timeout_s = 1.0
webhook_backoff_s = 8.0
webhook_backoff_max_s = 8.0

[rules]
rfm_segments = false
[rules.segments]
buyer = "purchases >= 1"

[[webhooks]]
name = "flaky"
url = "{receiver.url('/flaky')}"
secret = "whsec_{base64.b64encode(KEY).decode()}"
triggers = []
""")
        first = Worker(tmp_path, SEGSTREAM_CONFIG=str(config)).start()
        try:
            users = [f"r{n:02d}" for n in range(10)]
            events = [{"user_id": u, "type": "purchase", "ts": 1_767_225_600, "event_id": f"{u}-0", "value": 5.0}
                      for u in users]  # fmt: skip
            asyncio.run(produce(first.topic("clicks"), [(e["user_id"].encode(), orjson.dumps(e)) for e in events]))
            wait_until_consumed(first, first.topic("clicks"))
            expected = {f"{u}:1" for u in users}  # each buyer's entry into 'buyer'
            deadline = time.monotonic() + 60
            while set(receiver.ids("/flaky")) != expected:  # every first attempt made, and failed
                assert time.monotonic() < deadline, "first attempts never arrived"
                time.sleep(0.2)
        finally:
            first.stop()  # retries wait in webhooks-retry-1: each up to 8 s away (full jitter)
        # A retry may have been due already; the others were pending at the stop.
        assert len(set(receiver.ids("/flaky", 200))) < len(expected), "nothing was pending at the stop"
        second = Worker(tmp_path, name=first.app_id, SEGSTREAM_CONFIG=str(config)).start(timeout=150)
        try:
            deadline = time.monotonic() + 120
            while set(receiver.ids("/flaky", 200)) != expected:
                assert time.monotonic() < deadline, f"delivered only {sorted(receiver.ids('/flaky', 200))}"
                time.sleep(0.5)
            assert not asyncio.run(read_all(second.topic("webhooks-dlq"), idle_s=1.0))
            assert all(r.signature_ok for r in receiver.requests)
            assert not second.errors(), second.errors()
        finally:
            second.stop()
