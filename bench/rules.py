"""Rules overhead: 50 rule segments plus the default triggers, against no rules, same run.

The simulator's default traffic is decoded once, then folded through the engine
(``app.core.engine.process.Engine.process``, batches of --batch messages, a fixed model
trained on the one-event-per-message traffic, no learner) under two configurations:

  none       no rule segments, every trigger off
  50 rules   the 5 classic RFM segments plus 45 more (features, traits, local time,
             per-type counts; see _EXTRA below) and the default triggers
             (cart_abandon, hot_lead, win_back)

The two alternate for --rounds rounds, each on a fresh engine and empty state, and
the median time per event of each is reported with the ratio. The time covers the
engine only (no decoding, no I/O): it is the work rules add. The garbage collector
is tuned as every ``segstream`` command tunes it (``app.cli.tune_garbage_collector``);
with the default thresholds, rescanning the users' states took about half of the
extra time. Both message shapes are measured: one event per message (a decision per event, the worst case) and
collector batches of up to 20 events (one decision per user per message).

Target (issue): at most 25% extra time per event.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

from app.cli import tune_garbage_collector
from app.core.engine.embedded import EmbeddedPipeline
from app.core.engine.process import Engine, EngineConfig
from app.core.events.decode import decode_message
from app.core.rules.rulebook import RFM_SEGMENTS, RulesConfig, TriggerConfig
from app.simulator import Scenario, generate
from bench.common import Report

# 45 distinct rules besides the RFM five, in the shapes marketers write: most change
# rarely (lifetime totals, traits), some drift (ratios, recency, RFM), and ten follow
# the session (local time, cart windows).
_EXTRA = [
    *(f"monetary > {a}" for a in (50, 100, 200, 400, 800)),
    *(f"frequency >= {n}" for n in (1, 2, 3, 5, 8)),
    *(f"trait.age between {lo} and {lo + 9}" for lo in (18, 25, 35, 45, 55)),
    *(f"trait.country in ({c}) and purchases >= 1" for c in ("'FR'", "'DE'", "'US'", "'GB'", "'ES', 'IT'")),
    *(f"search_share > 0.{n} or views_per_session > {n}" for n in (1, 2, 3, 4, 5)),
    *(f"recency_days < {d} and frequency >= 2" for d in (1, 3, 7, 14, 30)),
    *(f"r_score >= {r} and m_score >= {m}" for r, m in ((3, 3), (4, 2), (2, 4), (5, 1), (1, 5))),
    *(f"local_hour between {h} and {h + 3} and weekday not in ('sat', 'sun')" for h in (6, 10, 14, 18, 20)),
    *(f"count(add_to_cart, {m}m) >= 1 and count(purchase, {m}m) == 0" for m in (10, 20, 30, 45, 60)),
]
RULES = {**RFM_SEGMENTS, **{f"rule_{i:02d}": rule for i, rule in enumerate(_EXTRA)}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=Scenario().seed)
    parser.add_argument("--batch", type=int, default=1_000, help="messages per engine batch")
    parser.add_argument("--rounds", type=int, default=3)


def run(args: argparse.Namespace) -> Report:
    assert len(RULES) == 50
    tune_garbage_collector()  # as every segstream command runs
    configs = {
        "none": EngineConfig(rules=RulesConfig(segments={}, triggers=TriggerConfig(
            cart_abandon_s=0, hot_lead_views=0, win_back_days=0))),  # fmt: skip
        "50 rules": EngineConfig(rules=RulesConfig(segments=RULES)),
    }
    rows, data = [], {}
    model = None
    for k in (1, 20):
        scenario = Scenario(
            users=args.users, events=args.events, seed=args.seed, events_per_message=k, flush_at_session_end=k == 1
        )
        raws = [message.to_bytes() for message in generate(scenario)]
        model = model or _train(raws)  # trained on the K=1 shape, used for both
        batches = _decode(raws, args.batch)
        times: dict[str, list[float]] = {name: [] for name in configs}
        outputs: dict[str, tuple[int, int]] = {}
        for _ in range(args.rounds):
            for name, config in configs.items():
                seconds, outputs[name] = _fold(config, model, batches)
                times[name].append(seconds)
        base = statistics.median(times["none"])
        for name in configs:
            median = statistics.median(times[name])
            rows.append({
                "shape": f"K={k}", "config": name, "us/event": 1e6 * median / args.events,
                "x none": median / base, "changes": outputs[name][0],
                "changes/event": outputs[name][0] / args.events, "triggers": outputs[name][1],
                "all rounds (s)": " ".join(f"{t:.2f}" for t in times[name]),
            })  # fmt: skip
        data[f"k{k}_ratio"] = statistics.median(times["50 rules"]) / base
    notes = [
        f"workload: {args.users:,} users, {args.events:,} events per shape, seed {args.seed}, "
        f"batches of {args.batch} messages, {args.rounds} alternating rounds, medians, "
        f"gc thresholds {gc.get_threshold()}",
        f"extra time per event with 50 rules + default triggers: K=1 {100 * (data['k1_ratio'] - 1):.0f}%, "
        f"K=20 {100 * (data['k20_ratio'] - 1):.0f}% (target <= 25%)",
    ]
    return Report(
        title=f"rules overhead: {len(RULES)} rule segments + default triggers vs none",
        columns=["shape", "config", "us/event", "x none", "changes", "changes/event", "triggers", "all rounds (s)"],
        rows=rows, notes=notes, data=data,
    )  # fmt: skip


def _train(raws: list[bytes]):
    pipeline = EmbeddedPipeline(EngineConfig())
    pipeline.feed(raws, now=time.time())
    return pipeline.engine.model


def _decode(raws: list[bytes], batch: int) -> list[tuple[list, list]]:
    batches = []
    for start in range(0, len(raws), batch):
        events, messages = [], []
        for position, raw in enumerate(raws[start : start + batch]):
            decoded = decode_message(raw, now=time.time())
            events.extend(decoded.events)
            messages.extend([position] * len(decoded.events))
        batches.append((events, messages))
    return batches


def _fold(config: EngineConfig, model, batches) -> tuple[float, tuple[int, int]]:
    engine = Engine(config)
    engine.use_model(model)
    states: dict = {}
    changes = triggers = 0
    started = time.perf_counter()
    for events, messages in batches:
        result = engine.process(events, states.get, messages=messages)
        states.update(result.touched)
        changes += len(result.changes)
        triggers += len(result.triggers)
    triggers += len(engine.finish(states.get).triggers)
    return time.perf_counter() - started, (changes, triggers)
