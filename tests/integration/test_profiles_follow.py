"""``segstream profiles follow``: the profile materialiser as a process of its own, with its own metrics."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import urllib.request

import orjson
import pytest
import redis

from tests.kafka_harness import SEGSTREAM, Worker, free_port, produce, wait_until_consumed
from tests.polling import poll
from tests.scrape import sample

pytestmark = pytest.mark.integration

USERS = [f"pf-{i:03d}" for i in range(40)]


def _follower(worker: Worker, port: int, log) -> subprocess.Popen:
    return subprocess.Popen([SEGSTREAM, "profiles", "follow", "--port", str(port)], env=worker.env, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip


def _written(port: int) -> float:
    """``segstream_profile_writes_total{outcome="written"}`` on the /metrics at ``port`` (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return sample(answer.read().decode(), "segstream_profile_writes_total", outcome="written") or 0.0


def _seqs(client: redis.Redis, prefix: str) -> dict[str, int]:
    """Each user's profile ``seq`` in Redis."""
    found = {}
    for user in USERS:
        raw = client.hget(f"{prefix}profile:{user}", "json")
        if raw is not None:
            found[user] = orjson.loads(raw)["seq"]
    return found


def _clicks(kind: str, ts: float) -> list[tuple[bytes, bytes]]:
    return [(u.encode(), orjson.dumps({"user_id": u, "type": kind, "ts": ts * 1000, "event_id": f"{u}-{kind}",
                                       "value": 20.0}))
            for u in USERS]  # fmt: skip


def _wait(condition, what: str, log_path, timeout: float = 60.0) -> None:
    poll(condition, what, timeout, every=0.5, detail=lambda: log_path.read_text(errors="replace")[-4000:])


def test_a_follower_writes_every_profile_serves_its_metrics_and_catches_up_after_a_kill(tmp_path):
    """The worker materialises nothing (``materialise_in_worker = false``); the follower writes every
    profile, counts them on its own /metrics, and after a SIGKILL and a restart brings each one up to
    the changelog's latest state."""
    config = tmp_path / "segstream.toml"
    config.write_text('[rules.segments]\ncarted = "count(add_to_cart, 7d) >= 1"\n')
    worker = Worker(tmp_path, SEGSTREAM_CONFIG=str(config), SEGSTREAM_LEARN="false",
                    SEGSTREAM_MATERIALISE_IN_WORKER="false")  # fmt: skip
    prefix = worker.env["SEGSTREAM_REDIS_PREFIX"]
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    port, log_path = free_port(), tmp_path / "follow.log"
    follower = None
    try:
        worker.start()
        with log_path.open("ab") as log:
            follower = _follower(worker, port, log)
        now = time.time()
        asyncio.run(produce(worker.topic("clicks"), _clicks("product_view", now - 30)))
        wait_until_consumed(worker, worker.topic("clicks"), timeout=60)
        _wait(lambda: len(_seqs(client, prefix)) == len(USERS), "the follower did not write every profile", log_path)
        first = _seqs(client, prefix)
        _wait(lambda: _written(port) >= len(USERS), "the follower's /metrics did not count its writes", log_path)
        assert _written(int(worker.env["SEGSTREAM_WEB_PORT"])) == 0  # the worker wrote none

        follower.send_signal(signal.SIGKILL)
        follower.wait(10)
        asyncio.run(produce(worker.topic("clicks"), _clicks("add_to_cart", now - 20)))
        wait_until_consumed(worker, worker.topic("clicks"), timeout=60)
        time.sleep(2.0)
        assert _seqs(client, prefix) == first  # nobody writes profiles while the follower is down
        with log_path.open("ab") as log:
            follower = _follower(worker, port, log)
        _wait(lambda: all(seq > first[u] for u, seq in _seqs(client, prefix).items()),
              "the restarted follower did not bring every profile up to date", log_path, timeout=90)  # fmt: skip
        profiles = [orjson.loads(client.hget(f"{prefix}profile:{u}", "json")) for u in USERS]
        assert all("carted" in p["rules"] for p in profiles)
    finally:
        if follower is not None and follower.poll() is None:
            follower.send_signal(signal.SIGTERM)
            follower.wait(30)
        worker.stop(signal.SIGTERM)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
