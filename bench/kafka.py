"""Kafka throughput: client ceiling, empty Faust agent and the segstream worker on one topic.

Workload: the simulator's default traffic (``app.simulator.Scenario`` with only
users, events and events-per-message set), produced once to a fresh topic
``<run>-clicks`` (4 partitions, keyed by user_id) with the batch producer of
``segstream simulate --to-kafka``. Then, one after the other, each in its own
process and its own consumer group, reading that topic from the beginning:

  (a) client ceiling   raw aiokafka getmany + orjson decode of every message
  (b) framework floor  an empty Faust agent, take_events(1000, within=0.2), counting
  (c) segstream        the real ``segstream worker``: clicks in, state written,
                       segment changes out (see bench/segstream_worker.py)
  (d) naive baseline   a per-event Faust agent: a table write and River's learn_one and
                       predict_one for every event (bench/naive_agent.py)

(a), (b) and (d) are timed from the first record to the last; (c) both from "ready" (first
changelog record seen) to all offsets committed, and in-worker from the first to the
last changelog write. Every topic of the run starts with the run id and is deleted
at the end unless --keep-topics.

Targets (issue 13): K=20: c >= 100,000 events/s and c >= 0.8 of b; K=1: c >= 0.9 of b;
c >= 10 times d at K=20. All measured in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from app.commands.simulate import Pacer, produce
from app.simulator import Scenario, generate
from bench.common import Report, free_port
from bench.kafka_tools import BROKER, Kafka
from bench.segstream_worker import REPO, run_worker


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events", type=int, help="events in total (default 300,000 for K=1, else 1,000,000)")
    parser.add_argument("--per-message", type=int, default=1, metavar="K", help="up to K events per message")
    parser.add_argument("--seed", type=int, default=Scenario().seed)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=300.0, help="limit for each measurement, seconds")
    parser.add_argument("--only", nargs="+", choices=("client", "faust", "segstream", "naive"), help="run only these")
    parser.add_argument("--keep-topics", action="store_true", help="do not delete the run's topics")
    parser.add_argument("--quiet-s", type=float, default=0.0, metavar="S",
                        help="keep the segstream worker running S seconds after the last commit, the stream "
                        "quiet, before its state is read (what a quiet stream keeps)")  # fmt: skip
    parser.add_argument("--py-spy", metavar="PATH", help="record the segstream worker with py-spy (raw format)")
    parser.add_argument(
        "--faust-env", action="append", default=[], metavar="NAME=VALUE",
        help="environment for (b) and (c), e.g. CONSUMER_MAX_FETCH_SIZE=4194304 (Faust reads its settings' env names)",
    )


def run(args: argparse.Namespace) -> Report:
    k = args.per_message
    events = args.events or (300_000 if k == 1 else 1_000_000)
    # K > 1: exactly K events of one user per message (no flush at session end),
    # the collector-batched shape the issue asks to measure.
    scenario = Scenario(
        users=args.users, events=events, seed=args.seed, events_per_message=k, flush_at_session_end=k == 1
    )
    run_id = f"bench-k{k}-{time.strftime('%H%M%S')}-{os.getpid()}"
    topic = f"{run_id}-clicks"
    only = set(args.only or ("client", "faust", "segstream", "naive"))
    faust_env = dict(option.split("=", 1) for option in args.faust_env)
    work_dir = Path(tempfile.mkdtemp(prefix=f"{run_id}-"))
    print(f"bench kafka: run {run_id}, logs in {work_dir}", file=sys.stderr, flush=True)
    try:
        produced = asyncio.run(_fill(scenario, topic, args.partitions))
        print(f"bench kafka: produced {produced}", file=sys.stderr, flush=True)
        results: dict[str, dict] = {}
        if "client" in only:
            results["a"] = _guarded(_client, topic, f"{run_id}-client", produced["messages"], args.timeout)
        if "faust" in only:
            results["b"] = _guarded(
                _faust, "faust_floor", topic, f"{run_id}-floor", produced["messages"], work_dir, args, faust_env
            )
        if "segstream" in only:
            results["c"] = asyncio.run(
                run_worker(
                    run_id=run_id, events=events, clicks_end=produced["end_offsets"], work_dir=work_dir,
                    timeout_s=args.timeout, profile=args.py_spy, extra_env=faust_env, quiet_s=args.quiet_s,
                )
            )
        if "naive" in only:
            results["d"] = _guarded(
                _faust, "naive_agent", topic, f"{run_id}-naive", produced["messages"], work_dir, args, faust_env
            )
    finally:
        if not args.keep_topics:
            asyncio.run(_delete(run_id))
    return _report(scenario, produced, results, work_dir, faust_env)


async def _fill(scenario: Scenario, topic: str, partitions: int) -> dict:
    async with Kafka() as kafka:
        await kafka.create_topic(topic, partitions)
        started = time.perf_counter()
        messages, events = await produce(generate(scenario), BROKER, topic, Pacer(0))
        seconds = time.perf_counter() - started
        ends = await kafka.end_offsets(topic)
    return {"messages": messages, "events": events, "seconds": seconds, "end_offsets": ends}


async def _delete(run_id: str) -> None:
    async with Kafka() as kafka:
        await kafka.delete_topics(f"{run_id}-")


def _guarded(measure, *args) -> dict:
    """Run one measurement; a failure becomes {"error": ...} so the others still report."""
    try:
        return measure(*args)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def _child(module: str, *options: str) -> list[str]:
    return [sys.executable, "-m", f"bench.{module}", *options]


def _client(topic: str, group: str, messages: int, timeout: float) -> dict:
    command = _child("client_ceiling", "--topic", topic, "--group", group, "--messages", str(messages))
    done = subprocess.run(command, cwd=REPO, capture_output=True, timeout=timeout + 30)
    if done.returncode != 0:
        raise RuntimeError(f"client ceiling failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return orjson.loads(done.stdout.splitlines()[-1])


def _faust(
    module: str, topic: str, app_id: str, messages: int, work_dir: Path, args: argparse.Namespace,
    env: dict[str, str],
) -> dict:  # fmt: skip
    """A Faust worker of ``bench.<module>`` (the floor or the naive baseline) over the topic, until ``messages``."""
    out, log_path = work_dir / f"{module}.json", work_dir / f"{module}.log"
    command = _child(
        module, "--topic", topic, "--app-id", app_id, "--messages", str(messages), "--out", str(out),
        "--web-port", str(free_port()), "--data-dir", str(work_dir / f"{module}-data"),
        "--partitions", str(args.partitions),
    )
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        proc.wait(args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if not out.exists():
        raise RuntimeError(f"bench.{module} wrote no result (exit {proc.returncode}); see {log_path}")
    return {**orjson.loads(out.read_bytes()), "exit": proc.returncode, "log": str(log_path)}


def _report(
    scenario: Scenario, produced: dict, results: dict[str, dict], work_dir: Path, faust_env: dict[str, str]
) -> Report:
    events, messages = produced["events"], produced["messages"]
    a, b, c, d = results.get("a"), results.get("b"), results.get("c"), results.get("d")
    spans = {
        "(a) client ceiling: aiokafka getmany + orjson": a and a.get("seconds"),
        "(b) framework floor: empty Faust agent, take_events": b and b.get("seconds"),
        "(c) segstream worker, ready -> all committed": c and c.get("observed_s"),
        "(c) segstream worker, first -> last state write": c and not c.get("error") and c.get("in_worker_s"),
        "(d) naive baseline: per-event table write + River learn_one/predict_one": d and d.get("seconds"),
    }
    cpu = [a and a.get("cpu_s"), b and b.get("cpu_s"), c and c.get("cpu_s"), None, d and d.get("cpu_s")]
    rate = {name: events / s for name, s in spans.items() if s}
    a_rate = rate.get("(a) client ceiling: aiokafka getmany + orjson")
    b_rate = rate.get("(b) framework floor: empty Faust agent, take_events")
    rows = []
    for (name, seconds), cpu_s in zip(spans.items(), cpu):
        if not seconds:
            continue
        rows.append({
            "measurement": name, "seconds": round(seconds, 2), "cpu/wall": cpu_s / seconds if cpu_s else None,
            "events/s": rate[name], "messages/s": messages / seconds,
            "x b": rate[name] / b_rate if b_rate else None, "x a": rate[name] / a_rate if a_rate else None,
        })
    k = scenario.events_per_message
    notes = [
        f"workload: {scenario.users:,} users, {events:,} events in {messages:,} messages "
        f"(K={k}, {events / messages:.2f} events/message), produced in {produced['seconds']:.1f} s "
        f"({events / produced['seconds']:,.0f} events/s)",
    ]
    notes += [f"({key}) FAILED: {r['error']}" for key, r in results.items() if r.get("error")]
    if c and not c.get("error"):
        notes += _worker_notes(c, k, rate, b_rate, rate.get(list(spans)[4]))
    elif c:
        notes += [f"  log: {line}" for line in c["log_problems"]["first"]]
    if faust_env:
        notes.append(f"extra environment for (b) and (c): {faust_env}")
    notes.append(f"cpu/wall: CPU seconds of the measured process (all threads) over the span; "
                 f"load average at end {[round(x, 2) for x in os.getloadavg()]}")
    notes.append(f"logs: {work_dir}")
    return Report(
        title=f"kafka: K={k}, {events:,} events, {scenario.users:,} users",
        columns=["measurement", "seconds", "cpu/wall", "events/s", "messages/s", "x b", "x a"],
        rows=rows, notes=notes,
        data={"scenario": {"users": scenario.users, "events": events, "per_message": k, "seed": scenario.seed},
              "produced": produced, "results": results},
    )


def _worker_notes(c: dict, k: int, rate: dict, b_rate: float | None, d_rate: float | None) -> list[str]:
    observed = rate.get("(c) segstream worker, ready -> all committed")
    in_worker = rate.get("(c) segstream worker, first -> last state write")
    notes = [
        f"segstream state: {c['changelog_records']:,} changelog writes ({c['writes_per_event']:.3f} per event), "
        f"{c['state_keys']:,} users, bytes/user mean {c['state_bytes_mean']:.0f}, p99 {c['state_bytes_p99']}, "
        f"max {c['state_bytes_max']}" + (f", read {c['quiet_s']:.0f} s after the last commit" if c.get("quiet_s")
                                         else ""),
        f"segstream outputs: {c['segment_changes']:,} segment changes {c['segment_changes_by_kind']}, "
        f"dlq {c['clicks-dlq_records']}, model-samples {c['model-samples_records']}, "
        f"segment-model {c['segment-model_records']}, drift {c['segment-drift_records']}",
        f"segstream worker: startup (process start -> first state write) {c['startup_s']:.1f} s, "
        f"peak RSS {c['worker_peak_rss_mb'] or 0:.0f} MiB, {c['worker_exit']}, "
        f"log problems {c['log_problems']['counts'] or 'none'}",
    ]
    notes += [f"  log: {line}" for line in c["log_problems"]["first"]]
    if not c["model-samples_records"]:
        notes.append("no user became eligible for a segment (min_events / min_sessions): this workload "
                     "exercised decoding and state writes only, no prediction and no segment changes")
    if k == 1 and b_rate:
        notes.append(
            f"target K=1, c >= 0.9 of b: c/b = {observed / b_rate:.3f} (observed), {in_worker / b_rate:.3f} (in-worker)"
        )
    elif k == 20:
        notes.append(f"target K=20, c >= 100,000 events/s: c = {observed:,.0f} (observed), {in_worker:,.0f} "
                     "(in-worker)" + (f"; c/b >= 0.8: {observed / b_rate:.3f}" if b_rate else ""))  # fmt: skip
    if d_rate:
        notes.append(f"target c >= 10 x d: c/d = {observed / d_rate:.2f} (observed)")
    return notes
