"""The worker creates its topics, with their partition counts and compaction, before its consumer joins."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.kafka_harness import BOOTSTRAP, ROOT, partitions_of

pytestmark = pytest.mark.integration

CREATE = """
import asyncio, orjson
from agents.build import build_worker
from app.kafka.topics import create_before_start
from app.settings import load_settings
worker = build_worker(load_settings())
print(orjson.dumps(asyncio.run(create_before_start(worker.topics, [worker.table.changelog_topic]))).decode())
"""


def _run_create(prefix: str, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEGSTREAM_TOPIC_PREFIX": prefix, "SEGSTREAM_APP_ID": prefix.rstrip("-"),
           "SEGSTREAM_BROKER": f"kafka://{BOOTSTRAP}", "SEGSTREAM_PARTITIONS": "3", **env}  # fmt: skip
    return subprocess.run([sys.executable, "-c", CREATE], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def _create(prefix: str, **env: str) -> list[str]:
    done = _run_create(prefix, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    return orjson.loads(done.stdout)


async def _topic_config(topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    return {entry[0]: entry[1] for entry in response.resources[0][4]}


def test_topics_exist_with_their_partitions_and_compaction_before_the_worker_starts():
    prefix = f"it-{uuid.uuid4().hex[:10]}-"
    expected = {"clicks": 3, "clicks-dlq": 3, "segment-changes": 3, "triggers": 3, "erasures": 3, "erased-users": 3,
                "segment-drift": 1, "model-samples": 1, "segment-model": 1, "webhooks-dlq": 3}  # fmt: skip
    changelog = f"{prefix}user_to_state-changelog"  # the app id is the prefix without its dash
    created = _create(prefix, SEGSTREAM_USER_DATA_RETENTION_S="3600")
    assert sorted(created) == sorted([changelog, *(prefix + name for name in expected)])
    for name, partitions in expected.items():
        assert len(asyncio.run(partitions_of(prefix + name))) == partitions, name
    assert len(asyncio.run(partitions_of(changelog))) == 3
    configs = {name: asyncio.run(_topic_config(prefix + name)) for name in expected}
    configs["changelog"] = asyncio.run(_topic_config(changelog))
    assert configs["clicks"]["cleanup.policy"] == "delete"
    # Copies of user data that no table owns expire: erased users leave them too.
    assert {name for name, config in configs.items() if config["retention.ms"] == "3600000"} == {
        "clicks-dlq", "model-samples", "webhooks-dlq", "erased-users"}  # fmt: skip
    # The compacted ones drop an erased user's older records within the same time: the
    # state changelog is compacted, not left to the broker's auto-creation (7-day deletion).
    assert {name: (config["cleanup.policy"], config["max.compaction.lag.ms"]) for name, config in configs.items()
            if config["cleanup.policy"] != "delete"} == {
        "segment-model": ("compact", "3600000"), "changelog": ("compact", "3600000")}  # fmt: skip
    assert _create(prefix) == []  # a second worker, or a restart, creates nothing


def test_an_existing_topic_that_keeps_user_data_longer_is_named_with_the_command_that_bounds_it():
    prefix = f"it-{uuid.uuid4().hex[:10]}-"
    _create(prefix, SEGSTREAM_USER_DATA_RETENTION_S="3600")
    done = _run_create(prefix, SEGSTREAM_USER_DATA_RETENTION_S="60")  # an operator shortened the retention
    assert done.returncode == 0, done.stderr[-3000:]
    warned = sorted(line.split("topic ")[1].split(" has ")[0] for line in done.stderr.splitlines()
                    if "longer than user_data_retention_s" in line)  # fmt: skip
    assert warned == sorted(prefix + name for name in ("clicks-dlq", "erased-users", "model-samples", "segment-model",
                                                       "webhooks-dlq", "user_to_state-changelog"))  # fmt: skip
    assert f"--entity-name {prefix}segment-model --add-config max.compaction.lag.ms=60000" in done.stderr


def test_a_topic_the_broker_refuses_stops_the_start_with_its_reason():
    # Faust reads its own settings from the environment: three replicas on a one-broker cluster.
    done = _run_create(f"it-{uuid.uuid4().hex[:10]}-", TOPIC_REPLICATION_FACTOR="3")
    assert done.returncode != 0
    assert "cannot create topic" in done.stderr and "replicat" in done.stderr.lower(), done.stderr[-2000:]
