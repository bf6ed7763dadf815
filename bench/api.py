"""Lookup API latency: GET /users/{id} on a real ``segstream worker``, under open-loop load from a second process.

Set-up: a fresh clicks topic ``<run>-clicks`` (4 partitions), one ``segstream worker``
with its own app id, topic prefix, web port and Redis prefix (``<run>:``), and the
simulator's default traffic (--users, --events, --per-message events per message)
produced to it with the batch producer of ``segstream simulate --to-kafka``. The
bench waits until the worker answers /readyz, has committed every clicks offset and
has written a profile to Redis for every user it saw; the ids requested are the
ones found there.

The worker runs with SEGSTREAM_IDLE_AFTER_S=--idle-after-s (3600 s, not the default
30 s). The simulated clicks carry event times from 2026-01-01 on, months behind the
wall clock; after idle_after_s without clicks the worker moves event time to the
wall clock and fires every deadline of those months at once, a one-off burst (it
stalled the API for about 0.3 s when it landed in a measurement). With live clicks
event time follows the wall clock and the idle advance is small, so the bench keeps
it out of the measurements.

Then, one after the other, each with a load generator in its own process
(``bench/api_load.py``, aiohttp, keep-alive pool, loopback) sending open-loop at
--rate requests/s for --warmup seconds (dropped) plus --seconds (measured):

  floor      GET /healthz on the idle worker: Faust's web server, the client and
             loopback, nothing of segstream's (skip with --floor-seconds 0)
  idle       GET /users/{id} on the idle worker (no clicks arriving)
  clicks     GET /users/{id} while clicks arrive at --clicks-rate events/s (one
             measurement per rate given), the continuation of the same simulated
             stream, produced by this process (skip with --clicks-rate 0)

Ids are drawn uniformly from the users with a profile; --unknown-share of the
requests ask for ids that exist nowhere (404: a Redis miss, then the table). The
table's percentiles are over the requests for known ids; the 404s are in the notes.
Latency is from each request's scheduled time to its last byte (no coordinated
omission); "p99 from send" starts when the request's headers were written to the
socket, and "send lag" is how late the client started a request: a large send lag
means the client, not the server, was late. Kafka, Redis, the worker, the client
and this process share the machine: each measurement reports the CPU of the worker,
of the client and of everything else (from /proc/stat), so a busy neighbour shows.
The worker's failed or timed-out Redis reads (its /metrics, read before and after)
are reported too: those requests are answered from the table.

Every topic of the run starts with the run id and is deleted at the end, with the
Redis keys under the run's prefix, unless --keep.

Target (issue): p99 <= 5 ms at 1,000 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
from redis.asyncio import Redis

from app.commands.simulate import _Pacer, _produce
from app.core.simulator import Message, Scenario, generate
from bench.common import Report, cpu_seconds, free_port, peak_rss_mb
from bench.kafka_tools import BROKER, Kafka
from bench.segstream_worker import REPO, SEGSTREAM, _log_problems, _start_py_spy, _stop, _wait

TARGET_P99_MS, TARGET_RATE = 5.0, 1_000.0
POLL_S = 0.25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000, help="events produced before measuring")
    parser.add_argument("--per-message", type=int, default=1, metavar="K", help="up to K events per message")
    parser.add_argument("--seed", type=int, default=Scenario().seed)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds of each measurement")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load sent and dropped first")
    parser.add_argument("--floor-seconds", type=float, default=10.0, help="measured seconds of GET /healthz; 0 skips")
    parser.add_argument("--unknown-share", type=float, default=0.01, help="share of requests for unknown ids (404)")
    parser.add_argument(
        "--clicks-rate", type=float, nargs="+", default=[1_000.0, 5_000.0], metavar="R",
        help="events/s produced during a 'while clicks flow' measurement, one measurement per rate; 0 skips them",
    )  # fmt: skip
    parser.add_argument("--idle-after-s", type=float, default=3_600.0, help="the worker's SEGSTREAM_IDLE_AFTER_S")
    parser.add_argument("--connections", type=int, default=256, help="client keep-alive pool size")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--timeout", type=float, default=120.0, help="limit for the worker to start and catch up")
    parser.add_argument("--py-spy", metavar="DIR", help="record the worker with py-spy (raw) during each measurement")
    parser.add_argument("--keep", action="store_true", help="keep the run's topics and Redis keys")


def run(args: argparse.Namespace) -> Report:
    run_id = f"bench-api-{time.strftime('%H%M%S')}-{os.getpid()}"
    work_dir = Path(tempfile.mkdtemp(prefix=f"{run_id}-"))
    if args.py_spy:
        Path(args.py_spy).mkdir(parents=True, exist_ok=True)
    print(f"bench api: run {run_id}, logs in {work_dir}", file=sys.stderr, flush=True)
    return asyncio.run(_run(args, run_id, work_dir))


async def _run(args: argparse.Namespace, run_id: str, work_dir: Path) -> Report:
    prefix, app_id, redis_prefix = f"{run_id}-", f"{run_id}-segstream", f"{run_id}:"
    clicks, port = f"{prefix}clicks", free_port()
    base_url = f"http://127.0.0.1:{port}"
    rates = [rate for rate in args.clicks_rate if rate > 0]
    flow_events = int(sum(rates) * (args.warmup + args.seconds + 30))  # more than the measurements need
    # One stream: the first --events before measuring, the rest while clicks flow.
    k = args.per_message
    scenario = Scenario(
        users=args.users, events=args.events + flow_events, seed=args.seed, events_per_message=k,
        flush_at_session_end=k == 1,
    )  # fmt: skip
    stream = generate(scenario)
    seen: set[str] = set()
    results: dict[str, dict] = {}
    info: dict = {"run_id": run_id, "log": str(work_dir / "segstream-worker.log")}
    async with Kafka() as kafka:
        await kafka.create_topic(clicks, args.partitions)
    worker = _start_worker(args, app_id, prefix, redis_prefix, port, work_dir)
    redis = Redis.from_url(args.redis_url)
    try:
        started = time.perf_counter()
        info["messages"], info["events"] = await _produce(_first(stream, args.events, seen), BROKER, clicks,
                                                          _Pacer(0))  # fmt: skip
        info["produce_s"] = time.perf_counter() - started
        print(f"bench api: produced {info['events']:,} events of {len(seen):,} users", file=sys.stderr, flush=True)
        info.update(await _wait_caught_up(worker, app_id, clicks, base_url, redis, redis_prefix, len(seen), args))
        ids = await _profile_ids(redis, redis_prefix)
        ids_file = work_dir / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        info["ids"] = len(ids)
        print(f"bench api: {len(ids):,} profiles in Redis, worker caught up; measuring", file=sys.stderr, flush=True)
        cpu, wall = cpu_seconds(worker.pid), time.perf_counter()
        await asyncio.sleep(3.0)
        info["worker_idle_cpu"] = (cpu_seconds(worker.pid) - cpu) / (time.perf_counter() - wall)

        load = ["--base-url", base_url, "--rate", str(args.rate), "--warmup", str(args.warmup),
                "--connections", str(args.connections)]  # fmt: skip
        users = [*load, "--ids", str(ids_file), "--unknown-share", str(args.unknown_share), "--seconds",
                 str(args.seconds)]  # fmt: skip
        floor = [*load, "--path", "/healthz", "--seconds", str(args.floor_seconds)]
        if args.floor_seconds > 0:
            results["floor"] = await _measure(worker, base_url, "floor", floor, work_dir, args)
        results["idle"] = await _measure(worker, base_url, "idle", users, work_dir, args)
        for rate in rates:
            results[f"clicks {rate:g}"] = await _while_clicks_flow(
                worker, base_url, stream, rate, clicks, app_id, users, work_dir, args
            )
    finally:
        info["worker_peak_rss_mb"] = peak_rss_mb(worker.pid)
        info["worker_exit"] = _stop(worker)
        if not args.keep:
            async with Kafka() as kafka:
                info["topics_deleted"] = len(await kafka.delete_topics(prefix))
            info["redis_keys_deleted"] = await _delete_keys(redis, redis_prefix)
        await redis.aclose()
    info["log_problems"] = _log_problems(work_dir / "segstream-worker.log")
    return _report(args, info, results, work_dir)


def _first(messages: Iterator[Message], events: int, seen: set[str]) -> Iterator[Message]:
    """Messages from ``messages`` up to ``events`` events, noting their users; the rest stay in the stream."""
    for message in messages:
        seen.add(message.key)
        yield message
        events -= len(message.events)
        if events <= 0:
            return


def _counting(messages: Iterator[Message], events: list[int]) -> Iterator[Message]:
    for message in messages:
        events[0] += len(message.events)
        yield message


def _start_worker(args, app_id: str, prefix: str, redis_prefix: str, port: int, work_dir: Path) -> subprocess.Popen:
    # segstream's defaults, not whatever SEGSTREAM_* this shell carries (a config file, a token).
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("SEGSTREAM_")}
    env = {
        **inherited,
        "SEGSTREAM_APP_ID": app_id,
        "SEGSTREAM_TOPIC_PREFIX": prefix,
        "SEGSTREAM_WEB_PORT": str(port),
        "SEGSTREAM_DATA_DIR": str(work_dir / "segstream-data"),
        "SEGSTREAM_BROKER": BROKER,
        "SEGSTREAM_REDIS_URL": args.redis_url,
        "SEGSTREAM_REDIS_PREFIX": redis_prefix,
        "SEGSTREAM_PARTITIONS": str(args.partitions),
        "SEGSTREAM_IDLE_AFTER_S": str(args.idle_after_s),
    }
    with open(work_dir / "segstream-worker.log", "wb") as log:
        return subprocess.Popen(
            [str(SEGSTREAM), "worker"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


async def _wait_caught_up(worker, app_id, clicks, base_url, redis, redis_prefix, users, args) -> dict:
    """Until /readyz is 200, every clicks offset is committed and Redis holds every user's profile.

    If the profile count stops growing short of ``users`` for 5 s, go on with what is there.
    """
    started = time.monotonic()
    ready_s = committed_s = None
    profiles, last_change = -1, time.monotonic()
    async with Kafka() as kafka, aiohttp.ClientSession(base_url) as http:
        ends = await kafka.end_offsets(clicks)
        total = sum(ends.values())
        while True:
            now = time.monotonic()
            if worker.poll() is not None:
                raise RuntimeError(f"segstream worker exited early with status {worker.returncode}")
            if now - started > args.timeout:
                raise TimeoutError(
                    f"worker not caught up after {args.timeout:.0f} s: ready {ready_s}, committed {committed_s}, "
                    f"{profiles:,} of {users:,} profiles"
                )
            if ready_s is None:
                try:
                    async with http.get("/readyz") as response:
                        if response.status == 200:
                            ready_s = now - started
                except aiohttp.ClientError:
                    pass
            if committed_s is None:
                committed = await kafka.committed(app_id, clicks)
                if sum(min(committed.get(p, 0), end) for p, end in ends.items()) >= total:
                    committed_s = now - started
            count = await _count_profiles(redis, redis_prefix)
            if count != profiles:
                profiles, last_change = count, now
            if ready_s is not None and committed_s is not None:
                if profiles >= users or now - last_change > 5.0:
                    return {"ready_s": ready_s, "committed_s": committed_s, "profiles_s": now - started,
                            "profiles": profiles, "users_seen": users}  # fmt: skip
            await asyncio.sleep(POLL_S)


async def _count_profiles(redis: Redis, prefix: str) -> int:
    count = 0
    async for _ in redis.scan_iter(match=f"{prefix}profile:*", count=5_000):
        count += 1
    return count


async def _profile_ids(redis: Redis, prefix: str) -> list[str]:
    head = f"{prefix}profile:".encode()
    return sorted([key[len(head):].decode() async for key in redis.scan_iter(match=head + b"*", count=5_000)])


async def _delete_keys(redis: Redis, prefix: str) -> int:
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=5_000)]
    for start in range(0, len(keys), 1_000):
        await redis.unlink(*keys[start : start + 1_000])
    return len(keys)


async def _measure(
    worker: subprocess.Popen, base_url: str, name: str, options: list[str], work_dir: Path, args
) -> dict:
    """One load-generator run; its summary plus the worker's CPU over the run."""
    out = work_dir / f"load-{name}.json"
    spy = _start_py_spy(worker.pid, str(Path(args.py_spy) / f"{name}.txt")) if args.py_spy else None
    metrics = await _metrics(base_url)
    cpu, wall, machine = cpu_seconds(worker.pid), time.perf_counter(), _machine_jiffies()
    children = _children_cpu()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.api_load", *options, "--out", str(out), "--raw", str(out.with_suffix(".npz")),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await child.communicate()
    wall = time.perf_counter() - wall
    worker_cpu = (cpu_seconds(worker.pid) - cpu) / wall
    busy, total = (b - a for a, b in zip(machine, _machine_jiffies()))
    client_cpu = _children_cpu() - children  # the load generator, start-up included: reaped, so counted
    after = await _metrics(base_url)
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
        _wait(spy, 30)
    if child.returncode != 0 or not out.exists():
        raise RuntimeError(f"load generator failed ({child.returncode}): {stderr.decode()[-2000:]}")
    print(f"bench api: measured {name}", file=sys.stderr, flush=True)
    result = orjson.loads(out.read_bytes())
    ncpu = len(os.sched_getaffinity(0))
    return {
        **result, "worker_cpu_per_wall": worker_cpu, "machine_busy": busy / total,
        # /proc/stat counts ticks, the processes' own times are exact: the difference is good to about 0.1 CPU
        "others_cpu_per_wall": max(0.0, busy / total * ncpu - worker_cpu - client_cpu / wall),
        "redis_read_errors": after.get('segstream_redis_errors_total{op="read"}', 0.0)
        - metrics.get('segstream_redis_errors_total{op="read"}', 0.0),
        "profile_backlog_after": after.get("segstream_profile_backlog"),
    }  # fmt: skip


async def _metrics(base_url: str) -> dict[str, float]:
    """The worker's Prometheus samples, by name with labels (outside the measured window)."""
    async with aiohttp.ClientSession(base_url) as http, http.get("/metrics") as response:
        text = await response.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, all CPUs, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


async def _while_clicks_flow(worker, base_url, stream, rate, clicks, app_id, options, work_dir, args) -> dict:
    """The idle measurement again, while this process produces clicks at ``rate`` events/s."""
    async with Kafka() as kafka:
        before = sum((await kafka.end_offsets(clicks)).values())
    started, cpu = time.perf_counter(), time.process_time()
    taken = [0]  # events taken from the stream (the last few may not have been sent when it stops)
    producer = asyncio.create_task(_produce(_counting(stream, taken), BROKER, clicks, _Pacer(rate)))
    await asyncio.sleep(2.0)  # the worker is consuming before the load generator's warm-up starts
    try:
        result = await _measure(worker, base_url, f"clicks-{rate:g}", options, work_dir, args)
    finally:
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        producer.cancel()
        try:
            await producer
        except asyncio.CancelledError:
            pass
    # Did the worker keep up? Time from the last click to all of them committed; Faust
    # commits every 2.8 s, so up to about that is keeping up.
    stopped = time.monotonic()
    async with Kafka() as kafka:
        ends = await kafka.end_offsets(clicks)
        while True:
            committed = await kafka.committed(app_id, clicks)
            behind = sum(end - committed.get(p, 0) for p, end in ends.items())
            if behind <= 0 or time.monotonic() - stopped > 60:
                break
            await asyncio.sleep(POLL_S)
    return {**result, "rate": rate, "clicks_s": seconds, "clicks_messages": sum(ends.values()) - before,
            "clicks_events": taken[0],
            "bench_cpu_per_wall": cpu / seconds, "behind_at_stop": behind,
            "catch_up_s": time.monotonic() - stopped}  # fmt: skip


def _label(key: str, result: dict) -> str:
    if key == "floor":
        return "GET /healthz, idle worker (floor)"
    if key == "idle":
        return "GET /users/{id}, idle worker"
    return f"GET /users/{{id}}, clicks at {result['rate']:,.0f} events/s"


def _report(args, info: dict, results: dict[str, dict], work_dir: Path) -> Report:
    rows, notes = [], []
    for key, result in results.items():
        known = result["classes"]["known"]
        due, sent, lag = known["from_schedule_ms"], known["from_send_ms"], result["send_lag_ms"]
        sources = known["sources"]
        rows.append({
            "measurement": _label(key, result), "requests": known["requests"], "req/s": result["achieved_rate"],
            "errors": known["errors"], "p50 ms": due["p50"], "p90 ms": due["p90"], "p99 ms": due["p99"],
            "p99.9 ms": due["p99.9"], "max ms": due["max"], "p99 from send": sent["p99"], "send lag p99": lag["p99"],
            "worker cpu": result["worker_cpu_per_wall"], "client cpu": result["client_cpu_per_wall"],
            "others cpu": result["others_cpu_per_wall"],
            "redis/table": f"{sources['redis']}/{sources['table']}" if key != "floor" else "-",
        })  # fmt: skip
    notes.append(
        f"workload: {info['users_seen']:,} users, {info['events']:,} events in {info['messages']:,} messages "
        f"(K={args.per_message}, seed {args.seed}) produced in {info['produce_s']:.1f} s; worker ready at "
        f"{info['ready_s']:.1f} s, all clicks committed at {info['committed_s']:.1f} s, {info['profiles']:,} "
        f"profiles in Redis at {info['profiles_s']:.1f} s (after producing); worker CPU while idle before "
        f"measuring {info['worker_idle_cpu']:.0%}; worker SEGSTREAM_IDLE_AFTER_S={args.idle_after_s:g}"
    )  # fmt: skip
    if info["profiles"] < info["users_seen"]:
        notes.append(f"only {info['profiles']:,} of {info['users_seen']:,} users got a profile in Redis")
    notes.append(
        f"load: open loop at {args.rate:,.0f} requests/s from a second process (bench/api_load.py, aiohttp, "
        f"at most {args.connections} keep-alive connections), {args.warmup:g} s warm-up dropped, then "
        f"{args.seconds:g} s measured ({args.floor_seconds:g} s for /healthz); ids uniform over the "
        f"{info['ids']:,} users with a profile, plus {args.unknown_share:.0%} unknown ids (404s, below)"
    )
    notes.append(
        "ms columns: scheduled send time -> last byte, over every request for a known id (a failure at its time "
        "to failure); 'p99 from send': headers written -> last byte; 'send lag': how late the client started a "
        "request; errors: known ids not answered 200 (/healthz: not 200); cpu: CPU seconds per wall second of "
        "the worker, of the load generator, and of everything else on the machine (Kafka, Redis, this process "
        "producing clicks, anything else running; machine minus the two, to about 0.1); redis/table: "
        "X-Segstream-Source of the 200s"
    )
    for key, result in results.items():
        unknown = result["classes"].get("unknown")
        if unknown:
            due = unknown["from_schedule_ms"]
            notes.append(
                f"{key}: {unknown['requests']:,} unknown ids, status {unknown['status']}, p50 {_ms(due['p50'])}, "
                f"p99 {_ms(due['p99'])}, max {_ms(due['max'])} ms"
            )
        if result["failures"]:
            notes.append(f"{key}: client failures {result['failures']}")
        if result["redis_read_errors"]:
            notes.append(
                f"{key}: {result['redis_read_errors']:.0f} failed or timed-out Redis reads in the worker (its "
                f"segstream_redis_errors_total{{op=\"read\"}}, warm-up included), answered from the table"
            )
        by_second = result["p99_by_second_ms"]
        if by_second:
            slowest = result["slowest"][:3]
            notes.append(
                f"{key}: p99 of each second from {min(by_second):.2f} to {max(by_second):.2f} ms "
                f"(median {sorted(by_second)[len(by_second) // 2]:.2f}); slowest at "
                + ", ".join(f"{s['at_s']:.2f} s ({s['ms']:.1f} ms)" for s in slowest)
            )
        if key.startswith("clicks"):
            events, seconds = result["clicks_events"], result["clicks_s"]
            notes.append(
                f"{key}: {events:,} events in {result['clicks_messages']:,} messages produced by the bench process "
                f"in {seconds:.0f} s ({events / seconds:,.0f} events/s, its cpu {result['bench_cpu_per_wall']:.2f}); "
                f"the worker committed the last of them {result['catch_up_s']:.1f} s after they stopped"
                + (f", still {result['behind_at_stop']:,} behind" if result["behind_at_stop"] > 0 else "")
            )
    notes.append(_verdict(results))
    notes.append(
        f"worker: peak RSS {info['worker_peak_rss_mb'] or 0:.0f} MiB, {info['worker_exit']}, log problems "
        f"{info['log_problems']['counts'] or 'none'}"
    )
    notes += [f"  log: {line}" for line in info["log_problems"]["first"]]
    if args.keep:
        notes.append(f"kept: topics {info['run_id']}-*, Redis keys {info['run_id']}:*")
    else:
        notes.append(f"cleaned up: {info['topics_deleted']} topics, {info['redis_keys_deleted']:,} Redis keys")
    notes.append(f"worker log, load summaries (.json) and every request's times (.npz): {work_dir}")
    return Report(
        title=f"api: GET /users/{{id}} latency at {args.rate:,.0f} requests/s, {info['ids']:,} profiles",
        columns=["measurement", "requests", "req/s", "errors", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
                 "p99 from send", "send lag p99", "worker cpu", "client cpu", "others cpu", "redis/table"],
        rows=rows, notes=notes, data={"info": info, "results": results},
    )  # fmt: skip


def _verdict(results: dict[str, dict]) -> str:
    parts = []
    for key, result in results.items():
        if key == "floor":
            continue
        known = result["classes"]["known"]
        p99, rate = known["from_schedule_ms"]["p99"], result["achieved_rate"] or 0.0
        met = p99 is not None and p99 <= TARGET_P99_MS and rate >= 0.98 * TARGET_RATE and known["errors"] == 0
        parts.append(f"{key}: p99 {_ms(p99)} ms at {rate:,.0f} requests/s, {'met' if met else 'NOT met'}")
    return f"target p99 <= {TARGET_P99_MS:g} ms at {TARGET_RATE:,.0f} requests/s: " + "; ".join(parts)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
