"""An output the broker refuses stops the worker, which commits nothing past it, and sends it after a restart."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.kafka_harness import BOOTSTRAP, SEGSTREAM, Worker, committed, produce, read_all, wait_until_consumed
from tests.polling import poll

pytestmark = pytest.mark.integration


async def _set_max_message_bytes(topic: str, limit: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": str(limit)})])
    finally:
        await admin.close()


def test_a_refused_output_stops_the_worker_without_committing_past_it(tmp_path):
    """The broker refuses every segment change (``max.message.bytes`` of 100 on the topic).

    That is a delivery failure no retry cures. Faust used to commit the failed batch's
    offsets (its ``on_task_error`` commits), restart the agent and go on, failing every
    batch after it. Now the worker stops with exit status 1 and one line, and commits
    no offset from the failure on.
    """
    config = tmp_path / "segstream.toml"
    config.write_text('[rules.segments]\ncarted = "count(add_to_cart, 7d) >= 1"\n')
    worker = Worker(tmp_path, SEGSTREAM_CONFIG=str(config), SEGSTREAM_LEARN="false")
    users = [f"of-{i:03d}" for i in range(200)]
    now = time.time()
    messages = [
        (u.encode(), orjson.dumps({"user_id": u, "type": "add_to_cart", "ts": (now - 60 + i * 0.1) * 1000,
                                   "event_id": f"{u}-cart", "value": 10.0}))
        for i, u in enumerate(users)
    ]  # fmt: skip
    try:
        worker.start()
        asyncio.run(_set_max_message_bytes(worker.topic("segment-changes"), 100))
        asyncio.run(produce(worker.topic("clicks"), messages))
        deadline = time.monotonic() + 90
        while worker.process.poll() is None:
            assert time.monotonic() < deadline, f"the worker went on after a refused output:\n{worker.log_tail()}"
            time.sleep(0.2)
        assert worker.process.returncode == 1, worker.log_tail()
        assert "stopped after an output failed: MessageSizeTooLargeError" in worker.log_tail(), worker.log_tail()
        assert max(asyncio.run(committed(worker.app_id, worker.topic("clicks"))).values(), default=0) <= 0

        # The topic takes changes again: the restarted worker sends every one, those whose states
        # reached the changelog before the failure included (they travel in the states: app/kafka/outbox.py).
        asyncio.run(_set_max_message_bytes(worker.topic("segment-changes"), 1_048_576))
        worker = Worker(tmp_path, name=worker.app_id, SEGSTREAM_CONFIG=str(config), SEGSTREAM_LEARN="false")
        worker.start(timeout=150)
        wait_until_consumed(worker, worker.topic("clicks"), timeout=120)
        deadline = time.monotonic() + 30
        while (entered := _entered(worker)) != set(users) and time.monotonic() < deadline:
            time.sleep(1.0)
        assert entered == set(users), f"{len(set(users) - entered)} users never entered 'carted'"
    finally:
        worker.stop(signal.SIGKILL)


def _entered(worker: Worker) -> set[str]:
    changes = [orjson.loads(r.value) for r in asyncio.run(read_all(worker.topic("segment-changes"), idle_s=1.0))]
    return {c["user_id"] for c in changes if c["segment"] == "carted" and c["change"] == "entered"}


def test_an_erasure_whose_exits_are_refused_is_carried_out_after_the_restart(tmp_path):
    """The erased user's ``exited`` change is refused: the state must outlive the failure.

    The erasure agent used to send the exits and tombstone the state at once. With the
    exits refused, the worker stopped, and the restarted worker, handed the request
    again, found no state, so the user never left the segment downstream. Now the state
    goes only once the exits are delivered.
    """
    config = tmp_path / "segstream.toml"
    config.write_text('[rules.segments]\ncarted = "count(add_to_cart, 7d) >= 1"\n')
    env = {"SEGSTREAM_CONFIG": str(config), "SEGSTREAM_LEARN": "false"}
    worker = Worker(tmp_path, **env)
    erased, kept = "gone-1", "kept-1"
    clicks = [(user.encode(), orjson.dumps({"user_id": user, "type": "add_to_cart", "ts": time.time() * 1000,
                                            "event_id": f"{user}-cart", "value": 30.0}))
              for user in (erased, kept)]  # fmt: skip
    try:
        worker.start()
        asyncio.run(produce(worker.topic("clicks"), clicks))
        wait_until_consumed(worker, worker.topic("clicks"), timeout=60)
        _await(lambda: _changes(worker, "entered") >= {erased, kept}, "the users never entered 'carted'", worker)
        asyncio.run(_set_max_message_bytes(worker.topic("segment-changes"), 100))
        done = subprocess.run([SEGSTREAM, "users", "erase", erased], env=worker.env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        _await(lambda: worker.process.poll() is not None, "the worker went on after a refused exit", worker)
        assert worker.process.returncode == 1, worker.log_tail()

        asyncio.run(_set_max_message_bytes(worker.topic("segment-changes"), 1_048_576))
        worker = Worker(tmp_path, name=worker.app_id, **env)
        worker.start(timeout=150)
        _await(lambda: erased in _changes(worker, "exited"), "the erased user never exited 'carted'", worker)
        _await(lambda: _latest(worker).get(erased, b"") is None, "the erased user's state was not tombstoned", worker)
        assert _latest(worker)[kept] is not None
        assert _changes(worker, "exited") == {erased}
    finally:
        worker.stop(signal.SIGKILL)


def _await(condition, what: str, worker: Worker, timeout: float = 90.0) -> None:
    poll(condition, what, timeout, every=0.5, detail=worker.log_tail)


def _changes(worker: Worker, change: str) -> set[str]:
    records = asyncio.run(read_all(worker.topic("segment-changes"), idle_s=1.0))
    return {c["user_id"] for c in map(orjson.loads, (r.value for r in records)) if c["change"] == change}


def _latest(worker: Worker) -> dict[str, bytes | None]:
    """The changelog's last record per user (None: a tombstone)."""
    return {r.key.decode(): r.value for r in asyncio.run(read_all(worker.changelog, idle_s=1.0))}
