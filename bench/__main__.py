"""``python -m bench <name> [options]``: run one benchmark, print its table, optionally write JSON.

Benchmarks: kafka, replay, flapping, quality, rules, api, sensor, fold (``python -m bench <name> --help``).
Run one at a time: they are meant to have the machine to themselves.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from datetime import datetime, timezone

from bench.common import command_line, machine, render, source_state, write_json

BENCHMARKS = ("kafka", "replay", "flapping", "quality", "rules", "api", "sensor", "fold")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="benchmark", required=True)
    for name in BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        doc = module.__doc__ or ""
        sub = subparsers.add_parser(
            name, help=doc.splitlines()[0], description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        sub.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
        module.add_arguments(sub)
        sub.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    header = {"benchmark": args.benchmark, "command": command_line(), "machine": machine(),
              "source": source_state(), "started_at": started_at}
    print(f"python -m bench {args.benchmark}: started {started_at}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    report = args.module.run(args)
    header["seconds"] = round(time.perf_counter() - started, 1)
    print(render(report, header), flush=True)
    if args.json:
        write_json(args.json, report, header)
        print(f"\nJSON results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
