"""Flapping: segment changes per user per hour of event time on a stationary stream.

The simulator with ``shift_strength=0`` (personas never change) runs through the
embedded pipeline (``app.core.engine.embedded.EmbeddedPipeline``, default ``EngineConfig``,
learning as it goes) twice: with the default hysteresis and minimum dwell, and with
both set to 0. A user's first change ("entered", out of segment "new") is warm-up and
not counted; every later change is. Exposure is the event time from a user's first
"entered" to the end of the stream, summed over users. Reported per configuration:
changes (total and "moved" only) per user-hour, per user-day, the share of users that
ever moved, moves straight back to the segment a user just left (A -> B -> A, the
flapping proper), and the ratio without / with hysteresis.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections import Counter
from datetime import datetime

from app.core.engine.embedded import EmbeddedPipeline
from app.core.engine.process import EngineConfig
from app.core.segments.segmenter import SegmenterConfig
from app.simulator import Scenario, generate
from bench.common import Report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=Scenario().seed)
    parser.add_argument("--batch", type=int, default=2_000, help="messages per engine batch")


def run(args: argparse.Namespace) -> Report:
    scenario = Scenario(users=args.users, events=args.events, seed=args.seed, shift_strength=0.0)
    defaults = SegmenterConfig()
    configs = {
        f"defaults (hysteresis {defaults.hysteresis}, min_dwell_s {defaults.min_dwell_s:g})": EngineConfig(),
        "hysteresis 0, min_dwell_s 0": EngineConfig(
            segmenter=dataclasses.replace(defaults, hysteresis=0.0, min_dwell_s=0.0)
        ),
    }
    rows = [{"config": name, **_measure(scenario, config, args.batch)} for name, config in configs.items()]
    base, loose = rows
    ratio = {
        key: loose[key] / base[key] if base[key] else float("inf")
        for key in ("changes/user-h", "moved/user-h", "back to previous")
    }
    notes = [
        f"workload: {scenario.users:,} users, {scenario.events:,} events, shift_strength 0, seed {scenario.seed}",
        f"without / with hysteresis: changes {ratio['changes/user-h']:.1f}x, moved {ratio['moved/user-h']:.1f}x, "
        f"back to previous {ratio['back to previous']:.1f}x",
        *(f"{row['config']}: changes by kind {row.pop('kinds')}, model versions {row.pop('model_versions')}, "
          f"drift events {row.pop('drifts')}, max moves of one user {row.pop('max_moves')}" for row in rows),
    ]
    return Report(
        title=f"flapping: stationary stream, {scenario.users:,} users, {scenario.events:,} events",
        columns=["config", "users in segment", "user-hours", "changes", "moved", "changes/user-h",
                 "moved/user-h", "moved/user-day", "back to previous", "users moved %", "seconds"],
        rows=rows, notes=notes, data={"ratio_without_over_with": ratio},
    )


def _measure(scenario: Scenario, config: EngineConfig, batch: int) -> dict:
    pipeline = EmbeddedPipeline(config)
    entered: dict[str, float] = {}  # user -> event time (s) of its first change
    later: Counter = Counter()  # change kind after the first, e.g. "moved"
    moves: Counter = Counter()  # user -> moves
    reasons: Counter = Counter()  # reason of each later change
    left: dict[str, str] = {}  # user -> the segment it left last
    back = 0  # moves straight back to the segment just left
    drifts = versions = 0
    started = time.perf_counter()
    raws: list[bytes] = []

    def feed() -> None:
        nonlocal drifts, versions, back
        result = pipeline.feed(raws, now=time.time())
        drifts += len(result.drifts)
        versions += len(result.models)
        for change in result.changes:
            if change["kind"] != "cluster":
                continue  # rule segments follow their rules, not the model
            user = change["user_id"]
            if user not in entered:
                entered[user] = datetime.fromisoformat(change["ts"]).timestamp()
                continue
            later[change["change"]] += 1
            reasons[change["reason"]] += 1
            if change["change"] == "moved":
                moves[user] += 1
                back += left.get(user) == change["segment"]
                left[user] = change["previous"]
        raws.clear()

    for message in generate(scenario):
        raws.append(message.to_bytes())
        if len(raws) >= batch:
            feed()
    if raws:
        feed()
    seconds = time.perf_counter() - started
    end = pipeline.engine.watermark.max_ts
    hours = sum(end - ts for ts in entered.values()) / 3600
    total, moved = sum(later.values()), later["moved"]
    return {
        "users in segment": len(entered),
        "user-hours": hours,
        "changes": total,
        "moved": moved,
        "changes/user-h": total / hours if hours else 0.0,
        "moved/user-h": moved / hours if hours else 0.0,
        "moved/user-day": 24 * moved / hours if hours else 0.0,
        "back to previous": back,
        "users moved %": 100 * len(moves) / len(entered) if entered else 0.0,
        "seconds": round(seconds, 1),
        "kinds": {**later, "reasons": dict(reasons)},
        "model_versions": versions,
        "drifts": drifts,
        "max_moves": max(moves.values(), default=0),
    }
