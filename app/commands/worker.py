"""``segstream worker``: run the Faust worker against SEGSTREAM_BROKER."""

from __future__ import annotations

import argparse
import asyncio


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("worker", help="run the stream worker (Faust) against SEGSTREAM_BROKER")
    parser.add_argument("--loglevel", default=None, help="log level (default: SEGSTREAM_LOG_LEVEL or info)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from faust.worker import Worker

    from app.main import app, settings

    import_agents()
    from app.logs import json_logging_config

    level = args.loglevel or settings.log_level
    config = json_logging_config(level) if settings.log_format == "json" else None
    _create_topics()
    worker = Worker(app, loglevel=level, logging_config=config)
    worker.execute_from_commandline()  # returns when the worker stops (SIGINT/SIGTERM)
    return 0


def import_agents() -> None:
    """Register every agent and table on the app."""
    import agents.learn_segments  # noqa: F401
    import agents.deliver_webhooks  # noqa: F401
    import agents.segment_users  # noqa: F401
    import agents.write_profiles  # noqa: F401
    import app.web  # noqa: F401


def _create_topics() -> None:
    """Every topic exists, and the broker lists it, before the consumer joins its group."""
    from app.topics import create_before_start

    # A loop of its own, never set as current: Faust's worker makes and runs the worker's loop.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(create_before_start())
    finally:
        loop.close()
