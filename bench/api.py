"""Lookup API latency: GET /users/{id} on a real ``segstream worker`` and on ``segstream api``, under open-loop load.

Set-up: a fresh clicks topic ``<run>-clicks`` (4 partitions), one ``segstream worker``
with its own app id, topic prefix, web port and Redis prefix (``<run>:``), and the
simulator's default traffic (--users, --events, --per-message events per message)
produced to it with the batch producer of ``segstream simulate --to-kafka``. The
bench waits until the worker answers /readyz, has committed every clicks offset and
has written a profile to Redis for every user it saw; the ids requested are the
ones found there.

Two servers answer the same routes, and each measurement loads both, one after
the other (the worker's first), in the same run:

  worker     the worker's own web server (Faust's, on SEGSTREAM_WEB_PORT), which
             shares the worker's event loop with the clicks
  api        ``segstream api`` (app/http/lookup_server.py), started by the bench once the
             worker has caught up, with the worker's environment plus
             SEGSTREAM_API_PORT; it reads Redis only and asks the worker (its
             default SEGSTREAM_WORKER_URL, the worker's web port) on a Redis miss

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

  floor      GET /healthz of each server, idle worker: the web stack (Faust's or
             aiohttp's), the client and loopback, nothing of segstream's (skip
             with --floor-seconds 0)
  idle       GET /users/{id} of each server, idle worker (no clicks arriving)
  clicks     GET /users/{id} of each server while clicks arrive at --clicks-rate
             events/s (one measurement per rate given, both servers loaded one
             after the other during one flow of clicks), the continuation of the
             same simulated stream, produced by this process (skip with
             --clicks-rate 0)

Ids are drawn uniformly from the users with a profile; --unknown-share of the
requests ask for ids that exist nowhere (404: a Redis miss, then the table; for
``segstream api``, a Redis miss, then a request to the worker, which reads Redis and
the table). The table's percentiles are over the requests for known ids; the 404s
are in the notes.
Latency is from each request's scheduled time to its last byte (no coordinated
omission); "p99 from send" starts when the request's headers were written to the
socket, and "send lag" is how late the client started a request: a large send lag
means the client, not the server, was late. Kafka, Redis, the worker, the api
process, the client and this process share the machine: each measurement reports
the CPU of the worker, of the api process, of the client and of everything else
(from /proc/stat), so a busy neighbour shows, and how long the main thread of
the worker, of the api process, of the client and of Redis waited for a CPU
(run-queue wait, /proc/<pid>/schedstat), with Redis's CPU and its busiest commands
(INFO commandstats, before and after). The worker's failed or timed-out Redis
reads (its /metrics, read before and after) are reported too: those requests are
answered from the table. ``segstream api`` has no /metrics: a Redis read it fails
goes to the worker, whose own answer (and X-Segstream-Source) the client sees.

Every topic of the run starts with the run id and is deleted at the end, with the
Redis keys under the run's prefix, unless --keep; the api process and the worker are
stopped at the end (SIGTERM, then SIGKILL).

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

from app.commands.simulate import Pacer, produce
from app.simulator import Message, Scenario, generate
from bench.api_load import runq_wait_s
from bench.common import Report, cpu_seconds, free_port, peak_rss_mb
from bench.kafka_tools import BROKER, Kafka
from bench.segstream_worker import REPO, SEGSTREAM, _log_problems, _start_py_spy, _stop, _wait

TARGET_P99_MS, TARGET_RATE = 5.0, 1_000.0
POLL_S = 0.25
SERVERS = ("worker", "api")  # loaded in this order in each measurement


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
    parser.add_argument(
        "--py-spy", metavar="DIR", help="record the server under load with py-spy (raw) during each measurement"
    )
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
    api_port = free_port()
    while api_port == port:
        api_port = free_port()
    urls = {"worker": f"http://127.0.0.1:{port}", "api": f"http://127.0.0.1:{api_port}"}
    rates = [rate for rate in args.clicks_rate if rate > 0]
    # Both servers are loaded during one flow per rate: more than the measurements need.
    flow_events = int(sum(rates) * (len(SERVERS) * (args.warmup + args.seconds + 5) + 30))
    # One stream: the first --events before measuring, the rest while clicks flow.
    k = args.per_message
    scenario = Scenario(
        users=args.users, events=args.events + flow_events, seed=args.seed, events_per_message=k,
        flush_at_session_end=k == 1,
    )  # fmt: skip
    stream = generate(scenario)
    seen: set[str] = set()
    results: dict[str, dict] = {}
    info: dict = {"run_id": run_id, "log": str(work_dir / "segstream-worker.log"),
                  "api_log": str(work_dir / "segstream-api.log")}  # fmt: skip
    async with Kafka() as kafka:
        await kafka.create_topic(clicks, args.partitions)
    env = _env(args, app_id, prefix, redis_prefix, port, work_dir)
    procs: dict[str, subprocess.Popen] = {"worker": _start("worker", env, work_dir)}
    worker = procs["worker"]
    redis = Redis.from_url(args.redis_url)
    try:
        started = time.perf_counter()
        info["messages"], info["events"] = await produce(_first(stream, args.events, seen), BROKER, clicks,
                                                          Pacer(0))  # fmt: skip
        info["produce_s"] = time.perf_counter() - started
        print(f"bench api: produced {info['events']:,} events of {len(seen):,} users", file=sys.stderr, flush=True)
        info.update(await _wait_caught_up(worker, app_id, clicks, urls["worker"], redis, redis_prefix, len(seen), args))
        ids = await _profile_ids(redis, redis_prefix)
        ids_file = work_dir / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        info["ids"] = len(ids)
        # The lookup server, with the worker's environment: the same Redis prefix, and the
        # worker's web port as its default SEGSTREAM_WORKER_URL.
        procs["api"] = _start("api", {**env, "SEGSTREAM_API_PORT": str(api_port)}, work_dir)
        info["api_ready_s"] = await _wait_api_ready(procs["api"], urls["api"], args.timeout)
        print(f"bench api: {len(ids):,} profiles in Redis, worker caught up, api ready; measuring",
              file=sys.stderr, flush=True)  # fmt: skip
        cpu, wall = {name: cpu_seconds(proc.pid) for name, proc in procs.items()}, time.perf_counter()
        await asyncio.sleep(3.0)
        wall = time.perf_counter() - wall
        info["worker_idle_cpu"] = (cpu_seconds(worker.pid) - cpu["worker"]) / wall
        info["api_idle_cpu"] = (cpu_seconds(procs["api"].pid) - cpu["api"]) / wall

        def load(server: str) -> list[str]:
            return ["--base-url", urls[server], "--rate", str(args.rate), "--warmup", str(args.warmup),
                    "--connections", str(args.connections)]  # fmt: skip

        users = {server: [*load(server), "--ids", str(ids_file), "--unknown-share", str(args.unknown_share),
                          "--seconds", str(args.seconds)] for server in SERVERS}  # fmt: skip
        floor = {server: [*load(server), "--path", "/healthz", "--seconds", str(args.floor_seconds)]
                 for server in SERVERS}  # fmt: skip
        if args.floor_seconds > 0:
            for server in SERVERS:
                results[f"floor/{server}"] = await _measure(procs, server, urls["worker"], redis, "floor",
                                                            floor[server], work_dir, args)  # fmt: skip
        for server in SERVERS:
            results[f"idle/{server}"] = await _measure(procs, server, urls["worker"], redis, "idle",
                                                       users[server], work_dir, args)  # fmt: skip
        for rate in rates:
            flow = await _while_clicks_flow(procs, urls["worker"], redis, stream, rate, clicks, app_id, users,
                                            work_dir, args)  # fmt: skip
            for server, result in flow.items():
                results[f"clicks {rate:g}/{server}"] = result
    finally:
        if "api" in procs:
            info["api_peak_rss_mb"] = peak_rss_mb(procs["api"].pid)
            info["api_exit"] = _stop(procs["api"])  # first: it asks the worker on a miss
        info["worker_peak_rss_mb"] = peak_rss_mb(worker.pid)
        info["worker_exit"] = _stop(worker)
        if not args.keep:
            async with Kafka() as kafka:
                info["topics_deleted"] = len(await kafka.delete_topics(prefix))
            info["redis_keys_deleted"] = await _delete_keys(redis, redis_prefix)
        await redis.aclose()
    info["log_problems"] = _log_problems(work_dir / "segstream-worker.log")
    info["api_log_problems"] = _log_problems(work_dir / "segstream-api.log")
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


def _env(args, app_id: str, prefix: str, redis_prefix: str, port: int, work_dir: Path) -> dict[str, str]:
    # segstream's defaults, not whatever SEGSTREAM_* this shell carries (a config file, a token).
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("SEGSTREAM_")}
    return {
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


def _start(command: str, env: dict[str, str], work_dir: Path) -> subprocess.Popen:
    """``segstream <command>`` (worker, api) in a session of its own, its output to segstream-<command>.log."""
    with open(work_dir / f"segstream-{command}.log", "wb") as log:
        return subprocess.Popen(
            [str(SEGSTREAM), command], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


async def _wait_api_ready(api: subprocess.Popen, url: str, timeout: float) -> float:
    """Seconds until ``segstream api`` answers /readyz with 200 (it pings Redis)."""
    started = time.monotonic()
    async with aiohttp.ClientSession(url) as http:
        while True:
            if api.poll() is not None:
                raise RuntimeError(f"segstream api exited early with status {api.returncode}")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"segstream api not ready after {timeout:.0f} s")
            try:
                async with http.get("/readyz") as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


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
    procs: dict[str, subprocess.Popen], server: str, worker_url: str, redis: Redis, name: str, options: list[str],
    work_dir: Path, args,
) -> dict:
    """One load-generator run against ``server``; its summary plus the CPU of the worker and the api over the run."""
    out = work_dir / f"load-{name}-{server}.json"
    spy = _start_py_spy(procs[server].pid, str(Path(args.py_spy) / f"{name}-{server}.txt")) if args.py_spy else None
    metrics, redis_stats = await _metrics(worker_url), await _redis_stats(redis)
    runq = {k: runq_wait_s(p.pid) for k, p in procs.items()}
    if redis_stats["pid"]:
        runq["redis"] = runq_wait_s(redis_stats["pid"])
    cpu, wall, machine = {k: cpu_seconds(p.pid) for k, p in procs.items()}, time.perf_counter(), _machine_jiffies()
    children = _children_cpu()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.api_load", *options, "--out", str(out), "--raw", str(out.with_suffix(".npz")),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await child.communicate()
    wall = time.perf_counter() - wall
    server_cpu = {k: (cpu_seconds(p.pid) - cpu[k]) / wall for k, p in procs.items()}
    pids = {**{k: p.pid for k, p in procs.items()}, "redis": redis_stats["pid"]}
    runq_after = {k: runq_wait_s(pids[k]) for k in runq}
    runq = {k: (runq_after[k] - v) / wall if v is not None and runq_after[k] is not None else None
            for k, v in runq.items()}  # fmt: skip
    redis_after = await _redis_stats(redis)
    busy, total, steal = (b - a for a, b in zip(machine, _machine_jiffies()))
    client_cpu = _children_cpu() - children  # the load generator, start-up included: reaped, so counted
    after = await _metrics(worker_url)
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
        _wait(spy, 30)
    if child.returncode != 0 or not out.exists():
        raise RuntimeError(f"load generator failed ({child.returncode}): {stderr.decode()[-2000:]}")
    print(f"bench api: measured {name} on {server}", file=sys.stderr, flush=True)
    result = orjson.loads(out.read_bytes())
    ncpu = _ncpu()
    return {
        **result, "server": server, "measurement": name,
        "worker_cpu_per_wall": server_cpu["worker"], "api_cpu_per_wall": server_cpu.get("api"),
        "machine_busy": busy / total, "steal_cpu_per_wall": steal / total * ncpu,
        # /proc/stat counts ticks, the processes' own times are exact: the difference is good to about 0.1 CPU
        "others_cpu_per_wall": max(0.0, busy / total * ncpu - sum(server_cpu.values()) - client_cpu / wall),
        "redis_read_errors": after.get('segstream_redis_errors_total{op="read"}', 0.0)
        - metrics.get('segstream_redis_errors_total{op="read"}', 0.0),
        "profile_backlog_after": after.get("segstream_profile_backlog"),
        "runq_wait_per_wall": {**runq, "client": result.get("client_runq_wait_per_wall")},
        "redis_commands": _redis_delta(redis_stats, redis_after, wall),
    }  # fmt: skip


async def _redis_stats(redis: Redis) -> dict:
    """Redis's pid (when it runs on this machine) and its per-command calls and microseconds so far."""
    server, stats = await redis.info("server"), await redis.info("commandstats")
    pid = server.get("process_id")
    local = pid is not None and Path(f"/proc/{pid}/comm").exists() and "redis" in Path(f"/proc/{pid}/comm").read_text()
    commands = {name.removeprefix("cmdstat_"): (v["calls"], v["usec"]) for name, v in stats.items()}
    return {"pid": pid if local else None, "cpu": cpu_seconds(pid) if local else None, "commands": commands}


def _redis_delta(before: dict, after: dict, wall: float) -> dict:
    """Per command: calls/s and µs per call over the run (commands a script calls count on their own too);
    'cpu': the Redis server's CPU seconds per wall second, when it runs here."""
    out = {}
    for name, (calls, usec) in after["commands"].items():
        calls0, usec0 = before["commands"].get(name, (0, 0))
        if calls > calls0:
            out[name] = {"per_s": (calls - calls0) / wall, "usec_per_call": (usec - usec0) / (calls - calls0)}
    cpu = None
    if before["pid"] and before["pid"] == after["pid"] and before["cpu"] is not None and after["cpu"] is not None:
        cpu = (after["cpu"] - before["cpu"]) / wall
    return {"cpu": cpu, "by_command": out}


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


def _machine_jiffies() -> tuple[int, int, int]:
    """(busy, total, steal) CPU time of the whole machine so far, all CPUs, from /proc/stat.

    Steal (time the hypervisor ran something else on this VM's CPUs) is counted as busy.
    """
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values), values[7] if len(values) > 7 else 0


async def _while_clicks_flow(procs, worker_url, redis, stream, rate, clicks, app_id, options, work_dir, args) -> dict:
    """The idle measurements again, each server in turn, while this process produces clicks at ``rate`` events/s."""
    async with Kafka() as kafka:
        before = sum((await kafka.end_offsets(clicks)).values())
    started, cpu = time.perf_counter(), time.process_time()
    taken = [0]  # events taken from the stream (the last few may not have been sent when it stops)
    producer = asyncio.create_task(produce(_counting(stream, taken), BROKER, clicks, Pacer(rate)))
    await asyncio.sleep(2.0)  # the worker is consuming before the load generator's warm-up starts
    results: dict[str, dict] = {}
    try:
        for server in SERVERS:
            results[server] = await _measure(procs, server, worker_url, redis, f"clicks-{rate:g}", options[server],
                                             work_dir, args)  # fmt: skip
            results[server]["clicks_so_far"] = taken[0]
    finally:
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        ran_out = producer.done()  # over before it was stopped: the stream ran out (or producing failed)
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
    flow = {"rate": rate, "clicks_s": seconds, "clicks_messages": sum(ends.values()) - before,
            "clicks_events": taken[0], "clicks_ran_out": ran_out,
            "bench_cpu_per_wall": cpu / seconds, "behind_at_stop": behind,
            "catch_up_s": time.monotonic() - stopped}  # fmt: skip
    return {server: {**result, **flow} for server, result in results.items()}


def _label(result: dict) -> str:
    name = result["measurement"]
    if name == "floor":
        return "GET /healthz, idle worker (floor)"
    if name == "idle":
        return "GET /users/{id}, idle worker"
    return f"GET /users/{{id}}, clicks at {result['rate']:,.0f} events/s"


def _report(args, info: dict, results: dict[str, dict], work_dir: Path) -> Report:
    rows, notes = [], []
    for result in results.values():
        known = result["classes"]["known"]
        due, sent, lag = known["from_schedule_ms"], known["from_send_ms"], result["send_lag_ms"]
        sources = known["sources"]
        rows.append({
            "measurement": _label(result), "server": result["server"], "requests": known["requests"],
            "req/s": result["achieved_rate"], "errors": known["errors"], "p50 ms": due["p50"], "p90 ms": due["p90"],
            "p99 ms": due["p99"], "p99.9 ms": due["p99.9"], "max ms": due["max"], "p99 from send": sent["p99"],
            "send lag p99": lag["p99"], "worker cpu": result["worker_cpu_per_wall"],
            "api cpu": result["api_cpu_per_wall"], "client cpu": result["client_cpu_per_wall"],
            "others cpu": result["others_cpu_per_wall"],
            "redis/table": f"{sources['redis']}/{sources['table']}" if result["measurement"] != "floor" else "-",
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
        f"servers: worker = the worker's web server (Faust, its event loop shared with the clicks); api = "
        f"`segstream api` (aiohttp, Redis only, asks the worker on a Redis miss), started after the worker caught "
        f"up with the worker's env plus SEGSTREAM_API_PORT, /readyz 200 after {info['api_ready_s']:.1f} s, CPU "
        f"while idle before measuring {info['api_idle_cpu']:.0%}; each measurement loads the worker, then the "
        f"api (while clicks flow: both during the same flow, the api's load starting about "
        f"{args.warmup + args.seconds:.0f} s later)"
    )
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
        "the worker, of the api process, of the load generator, and of everything else on the machine (Kafka, "
        "Redis, this process producing clicks, anything else running; machine minus the three, to about 0.1); "
        "redis/table: X-Segstream-Source of the 200s (the api's Redis misses and failed reads are answered by "
        "the worker, which names its own source)"
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
        runq, rc = result["runq_wait_per_wall"], result["redis_commands"]
        top = sorted(rc["by_command"].items(), key=lambda item: -item[1]["per_s"] * item[1]["usec_per_call"])[:3]
        notes.append(
            f"{key}: waiting for a CPU (run-queue, main thread, s per s): "
            + ", ".join(f"{name} {value:.3f}" for name, value in runq.items() if value is not None)
            + f"; machine busy {result['machine_busy']:.0%} of {_ncpu()} cpus, steal "
            + f"{result['steal_cpu_per_wall']:.3f}"
            + f"; Redis cpu {_ms(rc['cpu'])}, busiest commands ("
            + ", ".join(f"{name} {v['per_s']:,.0f}/s at {v['usec_per_call']:.1f} us" for name, v in top)
            + ")"
        )
        by_second = result["p99_by_second_ms"]
        if by_second:
            slowest = result["slowest"][:3]
            notes.append(
                f"{key}: p99 of each second from {min(by_second):.2f} to {max(by_second):.2f} ms "
                f"(median {sorted(by_second)[len(by_second) // 2]:.2f}); slowest at "
                + ", ".join(f"{s['at_s']:.2f} s ({s['ms']:.1f} ms)" for s in slowest)
            )
        if result["measurement"].startswith("clicks") and result["server"] == SERVERS[-1]:
            events, seconds = result["clicks_events"], result["clicks_s"]
            notes.append(
                f"clicks {result['rate']:g}: {events:,} events in {result['clicks_messages']:,} messages produced by "
                f"the bench process in {seconds:.0f} s, both servers' loads included ({events / seconds:,.0f} "
                f"events/s, its cpu {result['bench_cpu_per_wall']:.2f}); the worker committed the last of them "
                f"{result['catch_up_s']:.1f} s after they stopped"
                + (f", still {result['behind_at_stop']:,} behind" if result["behind_at_stop"] > 0 else "")
                + ("; THE STREAM RAN OUT before the measurements ended" if result["clicks_ran_out"] else "")
            )
    notes.append(_verdict(results))
    for name, problems in (("worker", info["log_problems"]), ("api", info["api_log_problems"])):
        rss, exit_ = info.get(f"{name}_peak_rss_mb") or 0, info.get(f"{name}_exit", "not started")
        notes.append(f"{name}: peak RSS {rss:.0f} MiB, {exit_}, log problems {problems['counts'] or 'none'}")
        notes += [f"  {name} log: {line}" for line in problems["first"]]
    if args.keep:
        notes.append(f"kept: topics {info['run_id']}-*, Redis keys {info['run_id']}:*")
    else:
        notes.append(f"cleaned up: {info['topics_deleted']} topics, {info['redis_keys_deleted']:,} Redis keys")
    notes.append(f"worker and api logs, load summaries (.json) and every request's times (.npz): {work_dir}")
    return Report(
        title=f"api: GET /users/{{id}} latency at {args.rate:,.0f} requests/s, {info['ids']:,} profiles, "
        f"worker's web server and segstream api",
        columns=["measurement", "server", "requests", "req/s", "errors", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms",
                 "max ms", "p99 from send", "send lag p99", "worker cpu", "api cpu", "client cpu", "others cpu",
                 "redis/table"],
        rows=rows, notes=notes, data={"info": info, "results": results},
    )  # fmt: skip


def _verdict(results: dict[str, dict]) -> str:
    parts = []
    for key, result in results.items():
        if result["measurement"] == "floor":
            continue
        known = result["classes"]["known"]
        p99, rate = known["from_schedule_ms"]["p99"], result["achieved_rate"] or 0.0
        met = p99 is not None and p99 <= TARGET_P99_MS and rate >= 0.98 * TARGET_RATE and known["errors"] == 0
        parts.append(f"{key}: p99 {_ms(p99)} ms at {rate:,.0f} requests/s, {'met' if met else 'NOT met'}")
    return f"target p99 <= {TARGET_P99_MS:g} ms at {TARGET_RATE:,.0f} requests/s: " + "; ".join(parts)


def _ncpu() -> int:
    return len(os.sched_getaffinity(0))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
