"""Embedded replay: events/s, bytes of state per user, peak RSS.

1. The simulator's default traffic (only users and events set) is written as JSON
   Lines to a temporary directory.
2. ``segstream replay FILE --out DIR`` runs on it as a child process: wall time, the
   events/s it reports itself (engine and output files, without start-up), and its
   peak RSS (ru_maxrss of the reaped child).
3. In this process, ``app.commands.replay.replay()`` runs over the same file with an
   ``EmbeddedPipeline(EngineConfig())`` and outputs discarded: the engine's events/s,
   with this process's garbage-collector settings (the ``segstream`` command line
   tunes them in ``app/cli.py``; the difference is the collector's cost).
   Then every user's state is encoded with ``tables.codecs.encode_state``: bytes per
   user (mean, p99, max), the size of a value in ``user_to_state``. Heap per user
   (tracemalloc) is measured too: of an encoded value as a worker's memory store keeps
   it, and of a decoded ``UserState`` as the worker's cache and replay keep it.

Targets (issue): >= 50,000 events/s, <= 2 KB per user.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from app.commands.replay import replay
from app.core.engine.embedded import EmbeddedPipeline
from app.core.engine.process import EngineConfig
from app.replay_io import read_messages
from app.simulator import Scenario, generate
from bench.common import Report
from tables.codecs import decode_state, encode_state

REPO = Path(__file__).resolve().parent.parent
_RATE = re.compile(r"([\d,]+) events in ([\d,]+) messages, ([\d.]+) s \(([\d,]+) events/s\)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--per-message", type=int, default=1, metavar="K")
    parser.add_argument("--seed", type=int, default=Scenario().seed)
    parser.add_argument("--batch", type=int, default=2_000, help="messages per engine batch (replay's default)")
    parser.add_argument("--timeout", type=float, default=600.0, help="limit for the child replay, seconds")


def run(args: argparse.Namespace) -> Report:
    scenario = Scenario(users=args.users, events=args.events, seed=args.seed, events_per_message=args.per_message)
    work = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    clicks = work / "clicks.jsonl"
    started = time.perf_counter()
    messages = _write(scenario, clicks)
    generated_s = time.perf_counter() - started
    print(f"bench replay: {messages:,} messages in {clicks} ({generated_s:.1f} s)", file=sys.stderr, flush=True)

    command = _command(clicks, work / "out", args.batch)
    child = _run_child(command, args.timeout)
    engine = _run_in_process(clicks, args.batch)
    sizes = engine.pop("sizes")
    heap = engine.pop("heap")

    rows = [
        {"measurement": "segstream replay (child, wall incl. start-up)", "seconds": child["wall_s"],
         "events/s": args.events / child["wall_s"]},
        {"measurement": "segstream replay (child, as it reports)", "seconds": child["own_s"],
         "events/s": child["own_rate"]},
        {"measurement": f"replay() in process, outputs discarded, gc thresholds {engine['gc_threshold']}",
         "seconds": engine["seconds"],
         "events/s": engine["events"] / engine["seconds"]},
    ]
    notes = [
        f"workload: {scenario.users:,} users, {args.events:,} events in {messages:,} messages "
        f"(K={args.per_message}), JSON Lines {clicks.stat().st_size / 2**20:,.0f} MiB, generated in {generated_s:.1f} s",
        f"child command: {' '.join(command)}",
        f"peak RSS: segstream replay child {child['peak_rss_mb']:.0f} MiB; this process (generator + in-process "
        f"replay) {engine['peak_rss_mb']:.0f} MiB",
        f"state per user (encode_state, {len(sizes):,} users): mean {sizes.mean():.0f} B, "
        f"p99 {np.percentile(sizes, 99):.0f} B, max {sizes.max()} B, total {sizes.sum() / 2**20:.1f} MiB",
        f"heap per user (tracemalloc): encoded value as stored {heap['encoded']:,.0f} B, "
        f"decoded UserState {heap['decoded']:,.0f} B",
        f"in-process outcomes {engine['outcomes']}, segment changes {engine['changes']:,}, drifts {engine['drifts']}",
        f"target >= 50,000 events/s: child {child['own_rate']:,.0f}, in-process "
        f"{engine['events'] / engine['seconds']:,.0f}; target <= 2 KB/user: mean {sizes.mean():.0f} B, "
        f"max {sizes.max()} B",
    ]
    state = {"mean": float(sizes.mean()), "p99": float(np.percentile(sizes, 99)), "max": int(sizes.max())}
    return Report(
        title=f"replay: {args.events:,} events, {scenario.users:,} users",
        columns=["measurement", "seconds", "events/s"],
        rows=rows, notes=notes,
        data={"child": child, "in_process": engine, "state_bytes": state, "heap_bytes": heap, "work_dir": str(work)},
    )


def _write(scenario: Scenario, path: Path) -> int:
    count = 0
    with open(path, "wb", buffering=1 << 20) as out:
        for message in generate(scenario):
            out.write(message.to_bytes() + b"\n")
            count += 1
    return count


def _command(clicks: Path, out: Path, batch: int) -> list[str]:
    return [str(REPO / ".venv" / "bin" / "segstream"), "replay", str(clicks), "--out", str(out), "--batch", str(batch)]


def _run_child(command: list[str], timeout: float) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "SEGSTREAM_CONFIG"}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"segstream replay failed ({done.returncode}): {done.stderr[-2000:]}")
    match = _RATE.search(done.stdout)
    if match is None:
        raise RuntimeError(f"cannot read the rate from segstream replay's summary: {done.stdout[-1000:]}")
    # Only one child has been reaped by this process, so this is its peak.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "wall_s": wall, "own_s": float(match[3]), "own_rate": float(match[4].replace(",", "")),
        "peak_rss_mb": peak, "summary": done.stdout.strip(),
    }


def _run_in_process(clicks: Path, batch: int) -> dict:
    pipeline = EmbeddedPipeline(EngineConfig())
    stats = replay(pipeline, read_messages(clicks), batch_size=batch, on_batch=lambda result, lines: None)
    sizes = np.fromiter((len(encode_state(state)) for state in pipeline.states.values()), dtype=np.int64)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "events": stats.events, "seconds": stats.seconds, "outcomes": dict(stats.outcomes),
        "changes": stats.changes, "drifts": stats.drifts, "sizes": sizes, "peak_rss_mb": peak,
        "gc_threshold": gc.get_threshold(),
        "heap": _heap_per_user(list(pipeline.states.values())),
    }


def _heap_per_user(states: list, sample: int = 20_000) -> dict[str, float]:
    """Traced heap bytes per user: encoded values kept as-is, and decoded states."""
    states = states[:sample]
    tracemalloc.start()
    try:
        encoded = [encode_state(state) for state in states]
        after_encode = tracemalloc.get_traced_memory()[0]
        decoded = [decode_state(raw) for raw in encoded]
        after_decode = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return {"encoded": after_encode / len(encoded), "decoded": (after_decode - after_encode) / len(decoded)}
