"""An output the broker refuses stops the worker without committing past it; a restart loses nothing."""

from __future__ import annotations

import asyncio
import signal
import time

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.kafka_harness import BOOTSTRAP, Worker, produce, read_all, wait_until_consumed

pytestmark = pytest.mark.integration


async def _set_max_message_bytes(topic: str, limit: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": str(limit)})])
    finally:
        await admin.close()


def test_a_refused_output_stops_the_worker_and_a_restart_delivers_it(tmp_path):
    """Every user enters ``carted`` once, although the first worker could publish no change.

    The broker refuses every segment change (``max.message.bytes`` of 100 on the topic):
    a delivery failure that no retry cures. Faust used to commit the failed batch's
    offsets (its ``on_task_error`` commits) and go on, and the states already in the
    changelog marked the messages applied, so no restart could publish those changes.
    """
    config = tmp_path / "segstream.toml"
    config.write_text('[rules.segments]\ncarted = "count(add_to_cart, 7d) >= 1"\n')
    env = {"SEGSTREAM_CONFIG": str(config), "SEGSTREAM_LEARN": "false"}
    first = Worker(tmp_path, **env)
    users = [f"of-{i:03d}" for i in range(200)]
    now = time.time()
    messages = [
        (u.encode(), orjson.dumps({"user_id": u, "type": "add_to_cart", "ts": (now - 60 + i * 0.1) * 1000,
                                   "event_id": f"{u}-cart", "value": 10.0}))
        for i, u in enumerate(users)
    ]  # fmt: skip
    changes = first.topic("segment-changes")
    try:
        first.start()
        asyncio.run(_set_max_message_bytes(changes, 100))
        asyncio.run(produce(first.topic("clicks"), messages))
        deadline = time.monotonic() + 90
        while first.process.poll() is None:
            assert time.monotonic() < deadline, f"the worker went on after a refused output:\n{first.log_tail()}"
            time.sleep(0.2)
        assert first.process.returncode == 1, first.log_tail()
        assert "stopped after an output failed: " in first.log_tail(), first.log_tail()
        assert "MessageSizeTooLarge" in first.log_tail()
    finally:
        first.stop(signal.SIGKILL)

    asyncio.run(_set_max_message_bytes(changes, 1_048_588))
    second = Worker(tmp_path, name=first.app_id, **env)
    try:
        second.start(timeout=150)
        wait_until_consumed(second, second.topic("clicks"), timeout=120)
        entered = [orjson.loads(r.value) for r in asyncio.run(read_all(changes, idle_s=2.0))]
        carted = {c["user_id"] for c in entered if c["segment"] == "carted" and c["change"] == "entered"}
        assert carted == set(users)
    finally:
        second.stop()
