"""Child process of ``bench kafka`` (b): the framework floor.

An empty Faust agent on a pre-filled topic: ``stream.take_events(1000, within=0.2)``
and nothing but counting, with the app settings of ``app.kafka.faust_app.create_app`` that
matter for throughput (at-least-once, memory store, producer linger 5 ms, no
waiting for empty streams, earliest offsets) and its own app id, so its consumer
group is fresh. Timed from the first batch to the batch holding the last message;
the result goes to ``--out`` as JSON, then the worker stops itself (SIGTERM).

    python -m bench.faust_floor --topic T --app-id A --messages M --out FILE --web-port P --data-dir D
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import faust
import orjson


def build_app(args: argparse.Namespace) -> faust.App:
    # The very app factory and process tuning the worker uses, so (b) and (c) differ
    # only by what the agent does.
    from app.cli import tune_garbage_collector
    from app.kafka.faust_app import create_app
    from app.settings import Settings

    tune_garbage_collector()
    app = create_app(
        Settings(
            app_id=args.app_id,
            broker=args.broker,
            data_dir=args.data_dir,
            web_port=args.web_port,
            partitions=args.partitions,
        )
    )
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    started = time.perf_counter()

    @app.agent(topic, concurrency=1)
    async def count(stream):
        messages, first = 0, None
        async for batch in stream.take_events(args.batch, within=args.within):
            if first is None:
                first, cpu_first = time.perf_counter(), time.process_time()
            messages += len(batch)
            if messages >= args.messages:
                finish(args.out, started, first, cpu_first, messages=messages)

    return app


def finish(out_path: str, started: float, first: float, cpu_first: float, **counts: int) -> None:
    """Write the result (``counts``, the span from the first record, its CPU time, the startup), then stop."""
    last, cpu = time.perf_counter(), time.process_time() - cpu_first
    result = {**counts, "seconds": last - first, "cpu_s": cpu, "startup_s": first - started}
    with open(out_path, "wb") as out:
        out.write(orjson.dumps(result))
    os.kill(os.getpid(), signal.SIGTERM)  # the worker shuts down cleanly


def child_parser() -> argparse.ArgumentParser:
    """The options every Faust child of ``bench kafka`` takes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", default="kafka://127.0.0.1:9092")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--messages", type=int, required=True, help="stop after this many messages")
    parser.add_argument("--out", required=True, help="JSON result file")
    parser.add_argument("--web-port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--partitions", type=int, default=4)
    return parser


def serve(app: faust.App) -> int:
    from faust.worker import Worker

    Worker(app, loglevel="warning").execute_from_commandline()
    return 0


def main() -> int:
    parser = child_parser()
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--within", type=float, default=0.2)
    return serve(build_app(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
