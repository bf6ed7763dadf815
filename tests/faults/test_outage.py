"""A broker outage moves no event time: it fires no trigger that a replay would not fire."""

from __future__ import annotations

import asyncio
import signal
import time

import orjson
import pytest

from tests.kafka_harness import OwnBroker, Worker, produce, read_all, wait_until_consumed

pytestmark = pytest.mark.integration

IDLE_AFTER_S = 8.0
CART_S = 12.0


def test_a_broker_outage_fires_no_trigger_that_replay_would_not(tmp_path):
    """Carts saved by purchases that the outage held back are not abandoned.

    Every user adds to cart at t0. The broker then stops for longer than
    ``idle_after_s`` plus the cart window. The saved users' purchases (event time
    t0 + 5 s, inside the window) reach the broker only once it is back, as a
    producer's buffer would deliver them. A worker that took the silence for a quiet
    stream moved event time past every deadline during the outage; the only carts
    abandoned are the ones nobody bought.
    """
    config = tmp_path / "segstream.toml"
    config.write_text(f'[rules.triggers]\ncart_abandon = "{int(CART_S)}s"\n')
    broker = OwnBroker(tmp_path).start()
    worker = Worker(tmp_path, SEGSTREAM_BROKER=f"kafka://{broker.bootstrap}", SEGSTREAM_CONFIG=str(config),
                    SEGSTREAM_IDLE_AFTER_S=str(IDLE_AFTER_S))  # fmt: skip
    try:
        worker.start()
        users = [f"out-{i:02d}" for i in range(24)]
        saved = users[:20]
        t0 = time.time()

        def click(user: str, kind: str, at: float) -> tuple[bytes, bytes]:
            doc = {"user_id": user, "type": kind, "ts": at * 1000, "event_id": f"{user}-{kind}", "value": 20.0}
            return user.encode(), orjson.dumps(doc)

        clicks = worker.topic("clicks")
        asyncio.run(produce(clicks, [click(u, "add_to_cart", t0) for u in users], broker.bootstrap))
        wait_until_consumed(worker, clicks, timeout=30)
        assert time.time() - t0 < IDLE_AFTER_S, "the carts must be read before the stream can look idle"

        broker.stop()
        stopped_at, log_lines_before = time.time(), len(worker.log_path.read_text().splitlines())
        time.sleep(max(0.0, t0 + IDLE_AFTER_S + CART_S + 15.0 - time.time()))  # the old idle advance fired here
        broker.start()
        asyncio.run(produce(clicks, [click(u, "purchase", t0 + 5.0) for u in saved], broker.bootstrap))
        outage_s = time.time() - stopped_at
        outage_lines = worker.log_path.read_text().splitlines()[log_lines_before:]

        def fired() -> list[dict]:
            records = asyncio.run(read_all(worker.topic("triggers"), idle_s=1.0, bootstrap=broker.bootstrap))
            return [orjson.loads(r.value) for r in records]

        deadline = time.monotonic() + 90
        while len(fired()) < len(users) - len(saved):  # the abandoned carts fire once all is quiet again
            assert time.monotonic() < deadline, f"triggers so far: {fired()}\n{worker.log_tail()}"
            time.sleep(1.0)
        time.sleep(3.0)  # the idle advance runs every second: anything wrong would have fired by now
        assert sorted(t["user_id"] for t in fired()) == users[len(saved):]

        # aiokafka logged each failed reconnect, thousands of lines a second; now a line per kind per 5 s.
        client_lines = [line for line in outage_lines if "aiokafka" in line]
        assert len(client_lines) <= 4 * (outage_s / 5.0 + 1), "\n".join(client_lines[:40])
    finally:
        worker.stop(signal.SIGTERM)
        broker.stop()
