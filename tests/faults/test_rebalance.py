"""Two workers of one app: after the rebalance, each counts only the users it owns."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter

import orjson
import pytest

from app.core.simulator import Scenario, generate
from tests.kafka_harness import SEGSTREAM, Worker, produce, user_key, wait_until_consumed
from tests.scrape import scrape, segment_users

pytestmark = pytest.mark.integration


@pytest.mark.timeout(420)
def test_segment_sizes_summed_over_two_workers_are_the_users_after_a_rebalance(tmp_path):
    lines = [message.to_bytes() for message in generate(Scenario(users=400, events=30_000, seed=11))]
    clicks = tmp_path / "clicks.jsonl"
    clicks.write_bytes(b"\n".join(lines) + b"\n")
    # A fixed model makes the memberships replay's: the truth to count against.
    subprocess.run([SEGSTREAM, "replay", str(clicks), "--out", str(tmp_path / "train")], check=True,
                   capture_output=True)  # fmt: skip
    model = tmp_path / "train" / "model.json"
    subprocess.run([SEGSTREAM, "replay", str(clicks), "--out", str(tmp_path / "fixed"), "--model", str(model),
                    "--no-learn"], check=True, capture_output=True)  # fmt: skip
    profiles = [orjson.loads(x) for x in (tmp_path / "fixed" / "profiles.jsonl").read_bytes().splitlines()]
    truth = Counter(("cluster", p["segment"]) for p in profiles if p["segment"] != "new")
    truth.update(("rule", rule) for p in profiles for rule in p["rules"])

    env = {"SEGSTREAM_MODEL_FILE": str(model), "SEGSTREAM_LEARN": "false"}
    first = Worker(tmp_path, **env).start()
    second = None
    try:
        keyed = [(user_key(line), line) for line in lines]
        asyncio.run(produce(first.topic("clicks"), keyed))
        wait_until_consumed(first, first.topic("clicks"))
        assert segment_users(scrape(first)) == truth

        # The second worker takes half the partitions; the first keeps standby copies of them.
        second = Worker(tmp_path, name=first.app_id, **env).start(timeout=150)
        deadline, sizes = time.monotonic() + 180, None
        while True:
            sizes = [segment_users(scrape(worker)) for worker in (first, second)]
            if all(sizes) and sizes[0] + sizes[1] == truth:
                break
            assert time.monotonic() < deadline, f"after the rebalance: {sizes[0]} + {sizes[1]} != {truth}"
            time.sleep(1.0)
        assert not first.errors() and not second.errors(), first.errors() + second.errors()
    finally:
        first.stop()
        if second is not None:
            second.stop()
