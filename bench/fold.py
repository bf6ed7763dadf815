"""Per-user features, in-process: the fold per event, the published snapshot and the codec per user.

The simulator's traffic (``Scenario`` with only users, events and seed set) is decoded
once; then, in each of ``--rounds`` rounds, every event is folded into a fresh
``UserFeatures`` per user (µs per event), every user's catalogue snapshot is taken as
of their latest event (µs per user), and every user's features go through
``to_record`` / orjson / ``from_record`` (µs per user). Best round of each. Compare two
commits as ratios of runs made one after the other on the same machine.
"""

from __future__ import annotations

import argparse
import time

import orjson

from app.core.events.decode import decode_message
from app.core.features import FeatureConfig, UserFeatures
from app.simulator import Scenario, generate
from bench.common import Report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=Scenario().seed)
    parser.add_argument("--rounds", type=int, default=3)


def run(args: argparse.Namespace) -> Report:
    cfg = FeatureConfig()
    scenario = Scenario(users=args.users, events=args.events, seed=args.seed)
    events = [event for message in generate(scenario) for event in decode_message(message.to_bytes(), now=2e9).events]
    fold = snapshot = codec = float("inf")
    for _ in range(max(1, args.rounds)):
        users: dict[str, UserFeatures] = {}
        started = time.perf_counter()
        for event in events:
            user = users.get(event.user_id)
            if user is None:
                user = users[event.user_id] = UserFeatures()
            user.apply(event, cfg)
        fold = min(fold, (time.perf_counter() - started) / len(events) * 1e6)
        started = time.perf_counter()
        for user in users.values():
            user.snapshot(user.last_ts, cfg)
        snapshot = min(snapshot, (time.perf_counter() - started) / len(users) * 1e6)
        started = time.perf_counter()
        for user in users.values():
            UserFeatures.from_record(orjson.loads(orjson.dumps(user.to_record())))
        codec = min(codec, (time.perf_counter() - started) / len(users) * 1e6)
    rows = [
        {"measurement": "fold (UserFeatures.apply)", "µs": round(fold, 2), "per": "event"},
        {"measurement": "published snapshot", "µs": round(snapshot, 2), "per": "user"},
        {"measurement": "codec (to_record, orjson, from_record)", "µs": round(codec, 2), "per": "user"},
    ]
    notes = [
        f"workload: {len(events):,} events of {args.users:,} users (seed {args.seed}); best of {args.rounds} rounds",
        f"features published per user: {len(UserFeatures().snapshot(0.0, cfg))}",
    ]
    return Report(title="per-user features: fold, snapshot, codec", columns=["measurement", "µs", "per"],
                  rows=rows, notes=notes)  # fmt: skip
