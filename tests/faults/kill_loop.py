"""Kill and restart one worker again and again under load; then count what was lost or doubled.

``python -m tests.faults.kill_loop --kills 10`` (needs ``scripts/services start``; about
half a minute a kill: a restarted worker waits out the dead member's session in the
group, ``group_session_timeout_s``, then recovers the whole changelog into its memory store).

A producer sends the simulated stream at a steady rate the whole time. Each cycle
kills the worker with SIGKILL a few seconds into its run, starts a new one with the
same app id, and measures:

- *ready*: seconds from the new process's start to Faust's "Ready";
- *caught up*: seconds from ready until the group has committed every clicks offset
  that existed when it became ready.

At the end the stream is closed with one tick per partition far past every deadline
(tests.kafka_harness.ticks), the last worker consumes it, and the outputs are checked
against replay with the same fixed model: events per user in the final states (lost,
counted twice), memberships, trigger ids (lost, extra), and ids published with two
contents. The model is fixed (``--no-learn``) so that replay is the truth to count against.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from app.simulator import Scenario, generate
from tables.codecs import decode_state
from tests.kafka_harness import (
    BOOTSTRAP, Worker, committed, end_offsets, fixed_model_replay, read_all, read_jsonl, ticks, user_key,
    wait_until_consumed,
)  # fmt: skip


class PacedProducer(threading.Thread):
    """Sends (key, value) pairs at ``rate`` messages a second, in its own thread and event loop."""

    def __init__(self, topic: str, messages: list[tuple[bytes, bytes]], rate: float) -> None:
        super().__init__(daemon=True)
        self.topic, self.messages, self.rate = topic, messages, rate
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._send())
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    async def _send(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5)
        await producer.start()
        try:
            started, chunk = time.monotonic(), max(1, int(self.rate / 10))
            for start in range(0, len(self.messages), chunk):
                futures = [await producer.send(self.topic, value, key=key)
                           for key, value in self.messages[start : start + chunk]]  # fmt: skip
                await asyncio.gather(*futures)
                self.sent = start + len(futures)
                await asyncio.sleep(max(0.0, started + self.sent / self.rate - time.monotonic()))
        finally:
            await producer.stop()


def truth(lines: list[bytes], work: Path) -> tuple[Path, dict, dict, Counter]:
    """The model, replay's triggers and memberships with it fixed, and the unique events per user."""
    model, fixed = fixed_model_replay(lines, work)
    triggers = {t["event_id"]: t for t in read_jsonl(fixed / "triggers.jsonl")}
    profiles = read_jsonl(fixed / "profiles.jsonl")
    segments = {p["user_id"]: p["segment"] for p in profiles}
    unique, seen = Counter(), set()
    for line in lines:
        doc = orjson.loads(line)
        for event in doc if isinstance(doc, list) else [doc]:
            if event["event_id"] not in seen:
                seen.add(event["event_id"])
                unique[event["user_id"]] += 1
    return model, triggers, segments, unique


def caught_up_after(worker: Worker, topic: str, timeout: float = 180.0) -> float:
    """Seconds until the group has committed every offset that ``topic`` had when this was called."""
    started, ends = time.monotonic(), asyncio.run(end_offsets(topic))
    while time.monotonic() - started < timeout:
        done = asyncio.run(committed(worker.app_id, topic))
        if all(done.get(p, -1) >= end for p, end in ends.items() if end > 0):
            return time.monotonic() - started
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker died:\n{worker.log_tail()}")
        time.sleep(0.5)
    return float("inf")


def published(topic: str) -> dict[str, set[bytes]]:
    """Every id on ``topic`` with its contents, the wall-clock emitted_at left out."""
    copies: dict[str, set[bytes]] = {}
    for record in asyncio.run(read_all(topic, idle_s=2.0, timeout=120.0)):
        doc = orjson.loads(record.value)
        doc.pop("emitted_at", None)
        copies.setdefault(doc["event_id"], set()).add(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS))
    return copies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.kill_loop", description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--rate", type=float, help="messages a second (default: spread over about 30 s a kill)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill-loop-"))
    messages = list(generate(Scenario(users=args.users, events=args.events, seed=args.seed)))
    last_ms = max(event["ts"] for m in messages for event in m.events)
    lines = [m.to_bytes() for m in messages] + ticks(last_ms + 90 * 86_400_000)
    model, true_triggers, true_segments, unique = truth(lines, work)
    rate = args.rate or len(lines) / (30.0 * max(1, args.kills))  # the load lasts about the whole loop
    print(f"kill loop: {len(lines):,} messages at {rate:,.0f}/s, {args.kills} kills; work dir {work}", flush=True)

    env = {"SEGSTREAM_MODEL_FILE": str(model), "SEGSTREAM_LEARN": "false", "SEGSTREAM_IDLE_AFTER_S": "3600"}
    worker = Worker(work, **env).start()
    topic = worker.topic("clicks")
    producer = PacedProducer(topic, [(user_key(line), line) for line in lines[:-len(ticks(0))]], rate)
    producer.start()
    rows = []
    try:
        for kill in range(1, args.kills + 1):
            time.sleep(rng.uniform(3.0, 12.0))  # part committed, part processed, part in flight
            worker.stop(signal.SIGKILL)
            started = time.monotonic()
            worker = Worker(work, name=worker.app_id, **env).start(timeout=400)  # recovery grows with the changelog
            ready_s = time.monotonic() - started
            rows.append((kill, producer.sent, ready_s, caught_up_after(worker, topic)))
            print(f"kill {kill:>2}: {rows[-1][1]:>9,} sent  ready {ready_s:6.1f} s  caught up {rows[-1][3]:6.1f} s "
                  "after ready", flush=True)  # fmt: skip
        producer.join()
        if producer.error is not None:
            raise producer.error
        asyncio.run(_send(topic, [(user_key(t), t) for t in lines[-len(ticks(0)):]]))
        wait_until_consumed(worker, topic, timeout=300)
        time.sleep(3.0)  # the last batch's outputs

        latest = {r.key.decode(): r.value for r in asyncio.run(read_all(worker.changelog, idle_s=2.0, timeout=120))}
        states = {user: decode_state(raw) for user, raw in latest.items() if raw is not None}
        counts = {user: state.features.events for user, state in states.items()}
        lost = sum(max(0, n - counts.get(user, 0)) for user, n in unique.items())
        doubled = sum(max(0, n - unique.get(user, 0)) for user, n in counts.items())
        moved = sum(states[u].membership.segment != s for u, s in true_segments.items() if u in states)
        triggers, changes = published(worker.topic("triggers")), published(worker.topic("segment-changes"))
        lost_triggers, extra_triggers = set(true_triggers) - set(triggers), set(triggers) - set(true_triggers)
        two_contents = sum(len(v) > 1 for v in triggers.values()) + sum(len(v) > 1 for v in changes.values())
        errors = [line for line in worker.errors() if "Traceback" in line]
    finally:
        worker.stop()
    worst = max(row[3] for row in rows) if rows else 0.0
    print(f"\nkills {len(rows)}; worst catch-up after ready {worst:.1f} s; slowest ready "
          f"{max((row[2] for row in rows), default=0.0):.1f} s")  # fmt: skip
    print(f"events: {sum(unique.values()):,} unique, lost {lost}, counted twice {doubled}")
    print(f"memberships unlike replay's: {moved} of {len(true_segments):,}")
    print(f"triggers: {len(true_triggers):,} in replay, lost {len(lost_triggers)}, extra {len(extra_triggers)}"
          f"{' e.g. ' + str(sorted(lost_triggers | extra_triggers)[:5]) if lost_triggers or extra_triggers else ''}")
    print(f"segment changes: {len(changes):,} ids; ids with two contents (triggers and changes): {two_contents}")
    print(f"tracebacks in the last worker's log: {len(errors)}")
    bad = lost or doubled or moved or lost_triggers or extra_triggers or two_contents or worst > 30.0
    return 1 if bad else 0


async def _send(topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, value, key=key) for key, value in messages])
    finally:
        await producer.stop()


if __name__ == "__main__":
    sys.exit(main())
