"""A real worker process on the real broker, and small Kafka helpers for the tests.

Each worker gets its own app id and topic prefix, so tests never share topics,
consumer groups or changelogs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

BOOTSTRAP = "127.0.0.1:9092"
ROOT = Path(__file__).resolve().parents[1]
SEGSTREAM = str(Path(sys.executable).with_name("segstream"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def broker_is_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 9092), timeout=2):
            return True
    except OSError:
        return False


class Worker:
    """``segstream worker`` in a subprocess with an isolated app id and topic prefix."""

    def __init__(self, tmp: Path, name: str | None = None, **env: str) -> None:
        self.app_id = name or f"it-{uuid.uuid4().hex[:10]}"
        self.prefix = f"{self.app_id}-"
        self.log_path = tmp / f"{self.app_id}.log"
        self.env = {
            **os.environ,
            "SEGSTREAM_APP_ID": self.app_id,
            "SEGSTREAM_TOPIC_PREFIX": self.prefix,
            "SEGSTREAM_WEB_PORT": str(free_port()),
            "SEGSTREAM_DATA_DIR": str(tmp / f"{self.app_id}-data"),
            "SEGSTREAM_BROKER": f"kafka://{BOOTSTRAP}",
            "SEGSTREAM_REDIS_PREFIX": f"{self.app_id}:",  # profiles of different tests never meet
            **env,
        }
        self.bootstrap = self.env["SEGSTREAM_BROKER"].removeprefix("kafka://")
        self.process: subprocess.Popen | None = None

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @property
    def changelog(self) -> str:
        return f"{self.app_id}-user_to_state-changelog"

    def start(self, timeout: float = 90.0) -> Worker:
        """Start the worker and wait until it is ready and has declared its topics."""
        ready_before = self._log().count("[^Worker]: Ready")
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [SEGSTREAM, "worker", "--loglevel", "info"], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.log_tail()}")
            topics = [self.topic("clicks"), self.topic("segment-changes"), self.topic("segment-model")]
            if self._log().count("[^Worker]: Ready") > ready_before and asyncio.run(topics_exist(topics, self.bootstrap)):
                return self
            time.sleep(0.5)
        self.stop(signal.SIGKILL)
        raise TimeoutError(f"worker not ready after {timeout} s:\n{self.log_tail()}")

    def _log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self._log().splitlines()[-lines:])

    def errors(self) -> list[str]:
        return [line for line in self._log().splitlines() if "[ERROR]" in line or "Traceback" in line]


def fixed_model_replay(lines: list[bytes], work: Path) -> tuple[Path, Path]:
    """Replay ``lines`` twice: once to learn a model, once with it fixed; returns (model.json, output dir).

    A worker given that model with ``SEGSTREAM_LEARN=false`` must match the second
    replay: its outputs are the truth to count against.
    """
    clicks = work / "clicks.jsonl"
    clicks.write_bytes(b"\n".join(lines) + b"\n")
    subprocess.run([SEGSTREAM, "replay", str(clicks), "--out", str(work / "train")], check=True, capture_output=True)
    model = work / "train" / "model.json"
    subprocess.run([SEGSTREAM, "replay", str(clicks), "--out", str(work / "fixed"), "--model", str(model),
                    "--no-learn"], check=True, capture_output=True)  # fmt: skip
    return model, work / "fixed"


def read_jsonl(path: Path) -> list:
    """The documents of a JSON-lines file, such as replay's outputs."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def ticks(ts_ms: float, partitions: int = 4) -> list[bytes]:
    """One page view per partition at ``ts_ms``, each from a user keyed onto that partition.

    A worker's watermark is its slowest partition's: placed after a stream, far past
    its deadlines, the ticks let a worker fire every deadline, as replay's end of input does.
    """
    found, partitioner = {}, DefaultPartitioner()
    for n in range(1_000):
        key = f"tick-{n}".encode()
        partition = partitioner(key, list(range(partitions)), list(range(partitions)))
        doc = {"user_id": key.decode(), "type": "page_view", "ts": ts_ms, "event_id": f"tick-{n}", "page": "/"}
        found.setdefault(partition, orjson.dumps(doc))
        if len(found) == partitions:
            return list(found.values())
    raise AssertionError("no key for some partition")


def user_key(line: bytes) -> bytes:
    """The Kafka key of a simulated message (one event, or an array of one user's): its user_id."""
    doc = orjson.loads(line)
    return (doc[0] if isinstance(doc, list) else doc)["user_id"].encode()


async def topics_exist(names: Iterable[str], bootstrap: str = BOOTSTRAP) -> bool:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return set(names) <= await consumer.topics()
    finally:
        await consumer.stop()


async def produce(
    topic: str, messages: Iterable[tuple[bytes | None, bytes]], bootstrap: str = BOOTSTRAP
) -> list[tuple[int, int]]:
    """Send (key, value) pairs in order; returns each message's (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in messages]
        results = [await future for future in futures]
    finally:
        await producer.stop()
    return [(r.partition, r.offset) for r in results]


async def partitions_of(topic: str, bootstrap: str = BOOTSTRAP) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        return sorted(await producer.partitions_for(topic))  # waits for the topic's metadata
    finally:
        await producer.stop()


async def end_offsets(topic: str, bootstrap: str = BOOTSTRAP) -> dict[int, int]:
    partitions = [TopicPartition(topic, p) for p in await partitions_of(topic, bootstrap)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def committed(group: str, topic: str, bootstrap: str = BOOTSTRAP) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


def wait_until_consumed(worker: Worker, topic: str, timeout: float = 240.0) -> None:
    """Block until the worker's group has committed every offset of ``topic``."""
    ends = asyncio.run(end_offsets(topic, worker.bootstrap))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process is not None and worker.process.poll() is not None:
            raise RuntimeError(f"worker died:\n{worker.log_tail()}")
        done = asyncio.run(committed(worker.app_id, topic, worker.bootstrap))
        if all(done.get(p, -1) >= end for p, end in ends.items() if end > 0):
            return
        time.sleep(1.0)
    raise TimeoutError(f"{topic} not consumed: committed {done}, end {ends}\n{worker.log_tail()}")


async def read_all(topic: str, idle_s: float = 3.0, timeout: float = 60.0, bootstrap: str = BOOTSTRAP) -> list:
    """Every record of ``topic`` from the beginning, once it has been idle for ``idle_s``."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    records = []
    try:
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last < idle_s:
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
                last = time.monotonic()
    finally:
        await consumer.stop()
    return records


def latest_values(topic: str, idle_s: float = 1.0) -> dict[str, bytes | None]:
    """Each key's newest value on ``topic`` (a changelog, say): ``None`` is a tombstone."""
    return {record.key.decode(): record.value for record in asyncio.run(read_all(topic, idle_s=idle_s))}


def click_record(user: str, kind: str, at_s: float, **fields) -> tuple[bytes, bytes]:
    """A click of ``user`` at ``at_s`` (epoch seconds), keyed by user, for :func:`produce`."""
    doc = {"user_id": user, "type": kind, "ts": at_s * 1000, "event_id": f"{user}-{kind}-{at_s}", **fields}
    return user.encode(), orjson.dumps(doc)


class OwnBroker:
    """A Kafka broker of a test's own (scripts/services with its own state and ports), which it may stop."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "SEGSTREAM_STATE": str(tmp / "services"),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",  # beside the shared broker on two cores
        }
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _services(self, command: str) -> None:
        subprocess.run([str(ROOT / "scripts" / "services"), command, "kafka"], env=self.env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip

    def start(self) -> OwnBroker:
        self._services("start")  # returns once the broker answers
        return self

    def stop(self) -> None:
        self._services("stop")
