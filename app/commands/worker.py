"""``segstream worker``: run the Faust worker against SEGSTREAM_BROKER."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("worker", help="run the stream worker (Faust) against SEGSTREAM_BROKER")
    parser.add_argument("--loglevel", default=None, help="log level (default: SEGSTREAM_LOG_LEVEL or info)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from agents.build import build_worker
    from app.kafka.delivery import guard
    from app.kafka.shutdown import Worker
    from app.logs import json_logging_config, quiet_client_errors, rate_limit_client_logs
    from app.settings import check_exposure, load_settings

    settings = load_settings()
    built = build_worker(settings)
    gc.freeze()  # the app and what its build imported are never garbage either (app/cli.py)

    level = args.loglevel or settings.log_level
    config = json_logging_config(level) if settings.log_format == "json" else None
    check_exposure(settings, "the worker")
    quiet_client_errors()
    rate_limit_client_logs()  # a broker outage is a line every few seconds, not thousands
    _check_data_dir(settings.data_dir)
    _create_topics(built)
    worker = Worker(built.app, loglevel=level, logging_config=config, shutdown_timeout_s=settings.shutdown_timeout_s)
    try:
        worker.execute_from_commandline()  # raises SystemExit when the worker stops (SIGINT/SIGTERM)
    except SystemExit:
        if guard.failure is not None:  # it stopped itself: an output failed (app/kafka/delivery.py)
            print(f"segstream worker: stopped after an output failed: {guard.failure!r}", file=sys.stderr)
            return 1
        raise
    return 0


def _create_topics(built) -> None:
    """Every topic exists, and the broker lists it, before the consumer joins its group."""
    from app.kafka.topics import create_before_start

    changelogs = [table.changelog_topic for table in built.app.tables.values()]
    # A loop of its own, never set as current: Faust's worker makes and runs the worker's loop.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(create_before_start(built.topics, changelogs))
    finally:
        loop.close()


def _check_data_dir(path: str) -> None:
    """The state directory must be writable: otherwise Faust fails later, with a traceback."""
    probe = Path(path) / ".segstream-write-check"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SystemExit(f"segstream: data directory {path} is not writable: {exc.strerror or exc}") from None
