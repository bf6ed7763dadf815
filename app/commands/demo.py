"""``segstream demo``: simulated personas through the embedded engine, with a live segment table."""

from __future__ import annotations

import argparse
from collections import Counter
import sys
import tempfile
import time
from pathlib import Path

from app.core.embedded import EmbeddedPipeline, FeedResult
from app.core.simulator import Scenario, assign_personas, generate
from app.report import persona_agreement, rule_table, segment_table
from app.replay_io import OutputDir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="simulate personas into the embedded engine and show the segments")
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, help="also write the replay output files here")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between live tables (default 2)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from app.commands.replay import replay, summary
    from app.main import settings

    scenario = Scenario(users=args.users, events=args.events, seed=args.seed)
    pipeline = EmbeddedPipeline(settings.engine)
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="segstream-demo-"))
    out = OutputDir(out_dir, "simulator")
    print(f"segstream demo: {scenario.users:,} users, {scenario.events:,} events, seed {scenario.seed}", flush=True)
    last_table = time.perf_counter()
    triggers: Counter = Counter()

    def on_batch(result: FeedResult, lines: list[int]) -> None:
        nonlocal last_table
        out.write(result, lines)
        triggers.update(trigger["trigger"] for trigger in result.triggers)
        for drift in result.drifts:
            d = drift.to_dict()
            print(
                f"\n⚠ drift at {d['ts']}: distance to centroid {d['baseline_distance']} -> "
                f"{d['drifted_distance']}; model v{d['previous_version']} -> v{d['version']} (refit, ids kept)",
                flush=True,
            )
        if time.perf_counter() - last_table >= args.every:
            last_table = time.perf_counter()
            print("\n" + segment_table(pipeline), flush=True)

    messages = ((n, message.to_bytes()) for n, message in enumerate(generate(scenario), start=1))
    stats = replay(pipeline, messages, batch_size=2_000, on_batch=on_batch)
    out.finish(pipeline)
    print("\n" + segment_table(pipeline))
    print("\n" + rule_table(pipeline, triggers))
    segments = {user: state.membership.segment for user, state in pipeline.states.items()}
    ari, coverage = persona_agreement(segments, assign_personas(scenario))
    print(f"\nadjusted Rand index vs hidden personas: {ari:.3f} (over the {coverage:.1%} of users with a segment)")
    print(summary(stats, pipeline, out_dir))
    return 0 if pipeline.engine.model is not None else 1


if __name__ == "__main__":
    sys.exit(run(argparse.Namespace(users=2_000, events=100_000, seed=7, out=None, every=2.0)))
