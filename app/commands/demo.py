"""``segstream demo``: simulated personas through the embedded engine, with a live segment table and dashboard."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from app.core.engine.embedded import EmbeddedPipeline, FeedResult
from app.core.segments.segment_sizes import SegmentSizes
from app.http.dashboard import engine_feed
from app.http.dashboard_server import DashboardServer
from app.replay_io import OutputDir
from app.report import persona_agreement, rule_table, segment_table
from app.simulator import Scenario, assign_personas, generate

DASHBOARD_SAMPLE_S = 0.5  # the demo runs for seconds, not hours: sample often


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="simulate personas into the embedded engine and show the segments")
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, help="also write the replay output files here")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between live tables (default 2)")
    parser.add_argument("--dashboard-port", type=int, default=6066,
                        help="serve the live dashboard on 127.0.0.1:PORT (default 6066; a busy port gives way "
                             "to a free one; 0: no dashboard)")  # fmt: skip
    parser.add_argument("--rate", type=float, default=0.0,
                        help="events per second, to watch the dashboard move (default 0: as fast as possible)")
    parser.add_argument("--hold", action="store_true", help="keep the dashboard up after the run, until Ctrl-C")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from app.commands.replay import replay, summary
    from app.settings import load_settings

    settings = load_settings()
    scenario = Scenario(users=args.users, events=args.events, seed=args.seed)
    pipeline = EmbeddedPipeline(settings.engine, min_event_time=settings.min_event_time)
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="segstream-demo-"))
    out = OutputDir(out_dir, "simulator")
    print(f"segstream demo: {scenario.users:,} users, {scenario.events:,} events, seed {scenario.seed}", flush=True)
    sizes = SegmentSizes()
    feed = engine_feed("demo", lambda: pipeline.engine.model, settings.engine.rules.segments, sizes.items)
    server = DashboardServer(feed, port=args.dashboard_port).start() if args.dashboard_port else None
    if server is not None:
        print(f"dashboard: {server.url}", flush=True)
    last_table = last_sample = time.perf_counter()
    triggers: Counter = Counter()

    def on_batch(result: FeedResult, lines: list[int]) -> None:
        nonlocal last_table, last_sample
        out.write(result, lines)
        triggers.update(trigger["trigger"] for trigger in result.triggers)
        sizes.apply(result.changes)
        feed.observe_batch(time.time() - np.asarray(result.event_times, dtype=float))
        feed.observe_outputs(result.changes, result.triggers)
        if time.perf_counter() - last_sample >= DASHBOARD_SAMPLE_S:
            last_sample = time.perf_counter()
            feed.sample()
        for drift in result.drifts:
            d = drift.to_dict()
            feed.observe_drift(d)
            if "shift" in d:  # a feature's mean moved (app/core/segments/fit_monitor.py)
                seen = f"mean {d['signal'].removeprefix('feature_mean:')} moved {d['shift']:+} spreads"
            else:
                seen = f"distance to centroid {d['baseline_distance']} -> {d['drifted_distance']}"
            print(f"\n⚠ drift at {d['ts']}: {seen}; model v{d['previous_version']} -> v{d['version']} "
                  "(refit, ids kept)", flush=True)  # fmt: skip
        if time.perf_counter() - last_table >= args.every:
            last_table = time.perf_counter()
            print("\n" + segment_table(pipeline), flush=True)

    messages = _paced(((n, message.to_bytes()) for n, message in enumerate(generate(scenario), start=1)), args.rate)
    # Paced, a batch is a quarter of a second of events, so the dashboard moves smoothly.
    batch_size = min(2_000, max(1, int(args.rate / 4))) if args.rate > 0 else 2_000
    stats = replay(pipeline, messages, batch_size=batch_size, on_batch=on_batch)
    out.finish(pipeline)
    print("\n" + segment_table(pipeline))
    print("\n" + rule_table(pipeline, triggers))
    segments = {user: state.membership.segment for user, state in pipeline.states.items()}
    ari, coverage = persona_agreement(segments, assign_personas(scenario))
    print(f"\nadjusted Rand index vs hidden personas: {ari:.3f} (over the {coverage:.1%} of users with a segment)")
    print(summary(stats, pipeline, out_dir))
    feed.sample()
    if server is not None and args.hold:
        print(f"\ndashboard still up at {server.url}; Ctrl-C to stop", flush=True)
        _wait_for_interrupt()
    return 0 if pipeline.engine.model is not None else 1


def _paced(messages: Iterator[tuple[int, bytes]], rate: float) -> Iterator[tuple[int, bytes]]:
    """``messages`` at about ``rate`` a second (0: unpaced); one message is one event in the demo."""
    if rate <= 0:
        yield from messages
        return
    started = time.perf_counter()
    for sent, message in enumerate(messages):
        ahead = sent / rate - (time.perf_counter() - started)
        if ahead > 0.01:
            time.sleep(ahead)
        yield message


def _wait_for_interrupt() -> None:
    """Until Ctrl-C or SIGTERM (as a test or a service manager stops it)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(run(argparse.Namespace(users=2_000, events=100_000, seed=7, out=None, every=2.0, dashboard_port=6066,
                                    rate=0.0, hold=False)))
