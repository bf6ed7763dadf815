"""Child process of ``bench api``: an open-loop HTTP load generator on loopback.

Sends GET requests at a fixed rate, whatever the server does: request i is due at
``start + i / rate`` and is started then (as a task), even if earlier ones are still
waiting, so a slow server is not hidden by a client that waits for it (no
coordinated omission). Each request is timed twice:

- *from schedule*: due time -> body read; what a caller sending at that rate sees.
- *from send*: the request's headers written to the socket (aiohttp's
  ``on_request_headers_sent``) -> body read: the server and loopback, without
  this process's lateness or a wait for a free connection.

"Send lag" is how late this process started a request (task start - due time);
when it is large the client, not the server, is the bottleneck, and the result
says so.

Paths are ``/users/{id}`` over ``--ids`` (one id a line, chosen uniformly at random)
with ``--unknown-share`` of ids that exist nowhere (404), or one fixed ``--path``.
The first ``--warmup`` seconds are sent the same way and dropped. The summary goes
to ``--out`` as JSON: percentiles in milliseconds for each class of request (known
ids, unknown ids), status counts, the ``X-Segstream-Source`` of every 200, the
achieved rate, the send lag, this process's CPU and how long its main thread waited
for a CPU (run-queue wait, /proc/self/schedstat), and the slowest requests with
their time into the run.

    python -m bench.api_load --base-url http://127.0.0.1:PORT --ids FILE --rate 1000 --seconds 20 --out FILE
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import time
from collections import Counter
from urllib.parse import quote

import aiohttp
import numpy as np
import orjson

PERCENTILES = (50, 90, 99, 99.9)
SOURCES = ("", "redis", "table")  # 0: no header


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="http://127.0.0.1:PORT")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--ids", metavar="FILE", help="user ids, one a line: GET /users/{id}")
    target.add_argument("--path", help="one fixed path, e.g. /healthz")
    parser.add_argument("--unknown-share", type=float, default=0.0, help="share of requests for unknown ids")
    parser.add_argument("--rate", type=float, default=1_000.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds, after the warm-up")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds sent and dropped first")
    parser.add_argument("--connections", type=int, default=256, help="keep-alive connection pool size")
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True, help="JSON summary here")
    parser.add_argument("--raw", metavar="PATH", help="also every request's times and status (numpy .npz), to dig in")
    return parser.parse_args(argv)


def plan(args: argparse.Namespace) -> tuple[list[str], np.ndarray]:
    """Every request's path and whether it asks for an unknown id, in sending order."""
    total = round(args.rate * (args.warmup + args.seconds))
    if args.path:
        return [args.path] * total, np.zeros(total, dtype=bool)
    with open(args.ids) as lines:
        ids = [line.strip() for line in lines if line.strip()]
    rng = random.Random(args.seed)
    unknown = np.array([rng.random() < args.unknown_share for _ in range(total)], dtype=bool)
    paths = [
        f"/users/nobody-{rng.randrange(1 << 40):010x}" if miss else f"/users/{quote(rng.choice(ids), safe='')}"
        for miss in unknown
    ]
    return paths, unknown


async def load(args: argparse.Namespace, paths: list[str]) -> dict[str, np.ndarray]:
    total = len(paths)
    due, started, sent, done = np.zeros(total), np.full(total, np.nan), np.full(total, np.nan), np.full(total, np.nan)
    status = np.zeros(total, dtype=np.int16)  # -1: exception
    source = np.zeros(total, dtype=np.int8)
    failures: Counter = Counter()
    interval = 1.0 / args.rate
    connector = aiohttp.TCPConnector(limit=args.connections, limit_per_host=args.connections)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    trace = aiohttp.TraceConfig()

    async def on_headers_sent(session, context, params) -> None:  # noqa: ARG001 - aiohttp's signature
        sent[context.trace_request_ctx] = time.perf_counter()

    trace.on_request_headers_sent.append(on_headers_sent)
    async with aiohttp.ClientSession(
        args.base_url, connector=connector, timeout=timeout, trace_configs=[trace]
    ) as session:

        async def one(i: int) -> None:
            started[i] = time.perf_counter()
            try:
                async with session.get(paths[i], allow_redirects=False, trace_request_ctx=i) as response:
                    await response.read()
                    status[i] = response.status
                    source[i] = SOURCES.index(response.headers.get("X-Segstream-Source", ""))
            except Exception as exc:  # noqa: BLE001 - every failure is counted, none stops the run
                status[i] = -1
                failures[type(exc).__name__] += 1
            done[i] = time.perf_counter()

        tasks: set[asyncio.Task] = set()
        start = time.perf_counter() + 0.05
        epoch = time.time() + (start - time.perf_counter())  # wall clock of ``start``, to line up with logs
        for i in range(total):
            due[i] = start + i * interval
            delay = due[i] - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=args.timeout + 5)
    return {"due": due - start, "started": started - start, "sent": sent - start, "done": done - start,
            "status": status, "source": source, "failures": failures, "start_epoch": epoch}  # fmt: skip


def percentiles(ms: np.ndarray) -> dict[str, float | None]:
    if not len(ms):
        return {**{f"p{p:g}": None for p in PERCENTILES}, "max": None, "mean": None}
    values = np.percentile(ms, PERCENTILES)
    return {**{f"p{p:g}": float(v) for p, v in zip(PERCENTILES, values)}, "max": float(ms.max()),
            "mean": float(ms.mean())}  # fmt: skip


def runq_wait_s(pid: int | str = "self") -> float | None:
    """Seconds the main thread of ``pid`` has waited, runnable, for a CPU (/proc/<pid>/schedstat); None if unknown."""
    try:
        with open(f"/proc/{pid}/schedstat") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def summarise(
    args: argparse.Namespace, runs: dict, unknown: np.ndarray, cpu_s: float, wall_s: float, runq_s: float | None
) -> dict:
    due, started, sent, done, status, source = (runs[k] for k in ("due", "started", "sent", "done", "status", "source"))
    measured = due >= args.warmup
    finished = ~np.isnan(done)  # failures included, at their time to failure
    wired = finished & ~np.isnan(sent)
    from_due, from_send, lag = (done - due) * 1e3, (done - sent) * 1e3, (started - due) * 1e3
    span = np.nanmax(started[measured]) - np.nanmin(started[measured]) if measured.any() else 0.0
    out = {
        "requests": int(measured.sum()),
        "unfinished": int((measured & ~finished).sum()),
        "achieved_rate": float((measured.sum() - 1) / span) if span > 0 else None,
        "send_lag_ms": percentiles(lag[measured & finished]),
        "client_cpu_per_wall": cpu_s / wall_s,
        "client_runq_wait_per_wall": None if runq_s is None else runq_s / wall_s,
        "failures": dict(runs["failures"]),
        "measured_from_epoch": runs["start_epoch"] + args.warmup,
        "classes": {},
    }
    for name, mask in (("known", ~unknown), ("unknown", unknown)):
        chosen = measured & mask & finished
        if not (measured & mask).any():
            continue
        expected = 404 if name == "unknown" else 200
        codes = Counter(int(s) for s in status[measured & mask])
        wrong = measured & mask & (status != expected)
        out["classes"][name] = {
            "requests": int((measured & mask).sum()),
            "expected_status": expected,
            "status": {str(k): v for k, v in sorted(codes.items())},
            "errors": int(wrong.sum()),
            "sources": {SOURCES[k] or "none": int((source[chosen & (status == 200)] == k).sum()) for k in range(3)},
            "from_schedule_ms": percentiles(from_due[chosen]),
            "from_send_ms": percentiles(from_send[chosen & wired]),
        }
    # When the slow ones happened (seconds into the measured part) and how slow, slowest first.
    order = np.argsort(np.where(measured & finished, from_due, -np.inf))[::-1][:10]
    out["slowest"] = [
        {"at_s": round(float(due[i] - args.warmup), 3), "ms": round(float(from_due[i]), 2),
         "send_lag_ms": round(float(lag[i]), 2), "status": int(status[i])}
        for i in order if measured[i] and finished[i]
    ]  # fmt: skip
    # p99 of each measured second, to see whether the tail is steady or comes in bursts.
    seconds = ((due - args.warmup) // 1).astype(int)
    out["p99_by_second_ms"] = [
        round(float(np.percentile(from_due[measured & finished & (seconds == s)], 99)), 2)
        for s in range(int(np.ceil(args.seconds)))
        if (measured & finished & (seconds == s)).any()
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    paths, unknown = plan(args)
    gc.collect()
    gc.freeze()  # the plan is long-lived: keep the collector off it while sending
    cpu, wall, runq = time.process_time(), time.perf_counter(), runq_wait_s()
    runs = asyncio.run(load(args, paths))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    runq = None if runq is None or runq_wait_s() is None else runq_wait_s() - runq
    summary = summarise(args, runs, unknown, cpu, wall, runq)
    if args.raw:
        np.savez(args.raw, unknown=unknown, **{k: v for k, v in runs.items() if isinstance(v, np.ndarray)},
                 start_epoch=runs["start_epoch"], warmup=args.warmup)  # fmt: skip
    with open(args.out, "wb") as out:
        out.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return 0


if __name__ == "__main__":
    sys.exit(main())
