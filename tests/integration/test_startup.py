"""Fatal start-up problems stop ``segstream worker`` at once, with one clear line and a non-zero status."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.kafka_harness import BOOTSTRAP, ROOT, SEGSTREAM, Worker

pytestmark = pytest.mark.integration


def _start_and_fail(worker: Worker, timeout: float = 60.0) -> str:
    """Run the worker, which must exit non-zero by itself; returns its output."""
    done = subprocess.run([SEGSTREAM, "worker"], env=worker.env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert done.returncode != 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stderr.strip().splitlines()[-1]


async def _create(topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


def test_a_partition_count_mismatch_stops_the_start(tmp_path):
    """It used to be raised inside the agent: the process then hung with a dead web server."""
    worker = Worker(tmp_path, SEGSTREAM_PARTITIONS="4")
    asyncio.run(_create(worker.topic("clicks"), 3))
    line = _start_and_fail(worker)
    assert line == (f"segstream: topic {worker.topic('clicks')} has 3 partitions but SEGSTREAM_PARTITIONS is 4; "
                    "they must match (the user-state changelog is co-partitioned)")  # fmt: skip


def test_a_changelog_with_another_partition_count_stops_the_start(tmp_path):
    worker = Worker(tmp_path, SEGSTREAM_PARTITIONS="4")
    asyncio.run(_create(worker.changelog, 2))
    assert f"topic {worker.changelog} has 2 partitions" in _start_and_fail(worker)


def test_an_unreachable_broker_stops_the_start_after_the_start_timeout(tmp_path):
    worker = Worker(tmp_path, SEGSTREAM_BROKER="kafka://127.0.0.1:9", SEGSTREAM_START_TIMEOUT_S="2")
    line = _start_and_fail(worker)
    assert line.startswith("segstream: cannot reach the broker at kafka://127.0.0.1:9 after 2 s: "), line


def test_an_unwritable_data_directory_stops_the_start(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    worker = Worker(tmp_path, SEGSTREAM_DATA_DIR=str(blocker / "data"))
    assert _start_and_fail(worker).startswith(f"segstream: data directory {blocker / 'data'} is not writable: ")


def test_a_mistyped_variable_stops_the_start_with_the_name_it_meant(tmp_path):
    worker = Worker(tmp_path, SEGSTREAM_BROKR="kafka://127.0.0.1:9092")
    assert _start_and_fail(worker) == (
        "segstream: unknown setting SEGSTREAM_BROKR in the environment; did you mean SEGSTREAM_BROKER?"
    )


def test_serving_profiles_beyond_loopback_without_a_token_stops_the_start(tmp_path):
    """Without a token every profile, traits included, was readable by anyone who could reach the port."""
    worker = Worker(tmp_path, SEGSTREAM_WEB_HOST="0.0.0.0")
    assert _start_and_fail(worker).startswith("segstream: the worker would serve profiles on 0.0.0.0 to anyone")
    done = subprocess.run([SEGSTREAM, "api"], env=worker.env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.stderr.strip().splitlines()[-1].startswith(
        "segstream: segstream api would serve profiles on 0.0.0.0 to anyone"
    ), done.stderr[-2000:]
