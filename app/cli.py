"""``segstream`` subcommands: worker, replay, simulate, demo."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from app.commands import demo, replay, simulate, worker

    parser = argparse.ArgumentParser(prog="segstream", description="Real-time user segmentation on Kafka.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in (worker, replay, simulate, demo):
        command.add_parser(subparsers)
    return parser


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(run())
