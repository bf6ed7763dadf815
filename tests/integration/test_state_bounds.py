"""Outputs proven delivered do not stay in the state of a user who does not come back."""

from __future__ import annotations

import asyncio
import signal
import time

import orjson
import pytest

from tables.codecs import decode_state
from tests.kafka_harness import Worker, click_record, latest_values, produce, read_all, wait_until_consumed
from tests.polling import poll

pytestmark = pytest.mark.integration

CONFIG = """
[rules.segments]
carted = "count(add_to_cart, 7d) >= 1"
"""


def test_a_quiet_user_is_written_once_without_the_outputs_a_commit_proved(tmp_path):
    config = tmp_path / "segstream.toml"
    config.write_text(CONFIG)
    worker = Worker(tmp_path, SEGSTREAM_CONFIG=str(config), SEGSTREAM_LEARN="false",
                    SEGSTREAM_PROVEN_OUTPUTS_IDLE_S="3").start()  # fmt: skip
    quiet = [f"quiet-{n}" for n in range(8)]  # on every partition, most likely
    busy = [f"busy-{n}" for n in range(40)]
    now = time.time()
    try:
        # The quiet users enter "carted" (a change held in their states), then never come back.
        # Others' clicks go on, so commits pass the quiet users' marks: their outputs are
        # proven, and no partition is caught up to settle them before that.
        first = [click_record(user, "add_to_cart", now, page="/p/1") for user in quiet]
        for second in range(12):
            clicks = [click_record(user, "page_view", now + 1 + second, page="/p/1") for user in busy]
            asyncio.run(produce(worker.topic("clicks"), first + clicks if second == 0 else clicks))
            time.sleep(1.0)
        wait_until_consumed(worker, worker.topic("clicks"), timeout=60)

        def still_held() -> list[str]:
            latest = latest_values(worker.changelog)
            return [user for user in quiet if decode_state(latest[user]).outbox]

        poll(lambda: not still_held(), "proven outputs stayed in quiet users' states", 60, every=1.0,
             detail=lambda: f"{still_held()}\n{worker.log_tail()}")  # fmt: skip
        changes = [orjson.loads(r.value) for r in asyncio.run(read_all(worker.topic("segment-changes"), idle_s=1.0))]
        assert sorted(c["user_id"] for c in changes if c["user_id"] in quiet) == sorted(quiet)  # sent once each
    finally:
        worker.stop(signal.SIGTERM)
