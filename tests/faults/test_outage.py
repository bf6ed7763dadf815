"""A broker outage moves no event time: it fires no trigger that a replay would not fire."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from datetime import datetime

import orjson
import pytest

from tests.kafka_harness import OwnBroker, Worker, produce, read_all, wait_until_consumed

pytestmark = pytest.mark.integration

IDLE_AFTER_S = 8.0
CART_S = 12.0
OUTAGE_S = 60.0  # issue 12: a 60 s outage fires no trigger that replay would not


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
                    SEGSTREAM_IDLE_AFTER_S=str(IDLE_AFTER_S), SEGSTREAM_LOG_FORMAT="json")  # fmt: skip
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
        # The old idle advance fired every cart IDLE_AFTER_S + CART_S after t0; the outage lasts longer.
        time.sleep(max(0.0, t0 + IDLE_AFTER_S + CART_S + 15.0 - time.time(), stopped_at + OUTAGE_S - time.time()))
        broker.start()
        asyncio.run(produce(clicks, [click(u, "purchase", t0 + 5.0) for u in saved], broker.bootstrap))
        outage_s = time.time() - stopped_at
        # JSON lines name their logger: the text format does not, and would hide aiokafka's lines.
        outage_lines = [orjson.loads(line) for line in worker.log_path.read_text().splitlines()[log_lines_before:]
                        if line.startswith("{")]  # fmt: skip

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
        client_lines = [line for line in outage_lines  # INFO lines ("Discovered coordinator") are not limited
                        if line["logger"].startswith("aiokafka") and line["level"] in ("warning", "error")]  # fmt: skip
        print(f"outage of {outage_s:.1f} s: {len(fired())} triggers for {len(users) - len(saved)} abandoned carts; "
              f"{len(outage_lines)} log lines, {len(client_lines)} of them aiokafka's")
        assert client_lines, "the outage must be visible in the log"
        written_at: dict[tuple[str, str], list[datetime]] = {}
        for line in client_lines:  # a kind is its logger and its message before the count "(N more like it ...)"
            kind = (line["logger"], re.sub(r" \(\d+ more like it.*", "", line["message"]))
            written_at.setdefault(kind, []).append(datetime.fromisoformat(line["ts"]))
        for kind, times in written_at.items():
            gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
            assert min(gaps, default=5.0) >= 4.5, f"{kind} written {len(times)} times in {outage_s:.0f} s: {gaps}"
        assert not [line for line in client_lines if "exc" in line], "client errors are one line, no traceback"
    finally:
        worker.stop(signal.SIGTERM)
        broker.stop()
