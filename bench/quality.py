"""Segment quality: adjusted Rand index against the simulator's personas, per River clusterer.

The default scenario (``Scenario()``, the ``segstream demo`` traffic) runs through the
embedded pipeline once per clusterer, each configured only through ``LearnerConfig``
(``algorithm`` names a ``river.cluster`` class exposing ``centers``, ``params`` its
constructor arguments). Scored with ``app.report.persona_agreement``: ARI over the
users that left segment "new", and that share of users (coverage). A clusterer that
fails inside the learner is reported with its error instead of a score.
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections import Counter

from app.core.embedded import EmbeddedPipeline
from app.core.engine import EngineConfig
from app.core.learner import LearnerConfig
from app.core.model import NEW_SEGMENT
from app.core.simulator import Scenario, assign_personas, generate
from app.report import persona_agreement
from bench.common import Report

# name -> LearnerConfig; the alternatives get 5 clusters and the seed where they take them.
CLUSTERERS = {
    "KMeans (default LearnerConfig)": LearnerConfig(),
    "STREAMKMeans chunk 10": LearnerConfig(
        algorithm="STREAMKMeans", params={"chunk_size": 10, "n_clusters": 5, "halflife": 0.5, "sigma": 1.0, "seed": 42}
    ),
    "STREAMKMeans chunk 100": LearnerConfig(
        algorithm="STREAMKMeans", params={"chunk_size": 100, "n_clusters": 5, "halflife": 0.5, "sigma": 1.0, "seed": 42}
    ),
    "CluStream": LearnerConfig(
        algorithm="CluStream",
        params={"n_macro_clusters": 5, "max_micro_clusters": 100, "time_gap": 100, "seed": 42, "halflife": 0.5},
    ),
    "DBSTREAM (defaults)": LearnerConfig(algorithm="DBSTREAM", params={}),
    "DenStream (defaults)": LearnerConfig(algorithm="DenStream", params={}),
}

# Why a clusterer cannot work through the Learner, where that is known.
LIMITS = {
    "DenStream": "river's DenStream fills `clusters` (and so `centers`) only in predict_one, its offline "
    "DBSCAN step; the Learner only calls learn_one, so the model has no centroids",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Scenario()
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument("--events", type=int, default=defaults.events)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--batch", type=int, default=2_000, help="messages per engine batch")
    parser.add_argument("--only", nargs="+", choices=list(CLUSTERERS), help="run only these clusterers")


def run(args: argparse.Namespace) -> Report:
    scenario = Scenario(users=args.users, events=args.events, seed=args.seed)
    truth = assign_personas(scenario)
    messages = [message.to_bytes() for message in generate(scenario)]
    rows, notes, errors = [], [], {}
    for name, learner in CLUSTERERS.items():
        if args.only and name not in args.only:
            continue
        row = {"clusterer": name, "params": _params(learner)}
        try:
            row.update(_score(messages, EngineConfig(learner=learner), truth, args.batch))
        except Exception as exc:  # a clusterer the learner cannot drive: report why
            row["error"] = f"{type(exc).__name__}: {exc}"
            errors[name] = traceback.format_exc(limit=6)
            notes.append(f"{name} failed: {row['error']} (at {_where(errors[name])})")
            if learner.algorithm in LIMITS:
                notes.append(f"  why: {LIMITS[learner.algorithm]}")
        rows.append(row)
    notes.insert(0, f"workload: Scenario(users={scenario.users}, events={scenario.events}, seed={scenario.seed}), "
                    "default shift at half the stream")
    return Report(
        title=f"quality: ARI vs personas, {scenario.users:,} users, {scenario.events:,} events",
        columns=["clusterer", "ARI", "coverage %", "segments used", "model versions", "drifts", "changes", "seconds"],
        rows=rows, notes=notes, data={"tracebacks": errors},
    )


def _score(messages: list[bytes], config: EngineConfig, truth: dict[str, str], batch: int) -> dict:
    pipeline = EmbeddedPipeline(config)
    versions = drifts = changes = 0
    started = time.perf_counter()
    for start in range(0, len(messages), batch):
        result = pipeline.feed(messages[start : start + batch], now=time.time())
        versions += len(result.models)
        drifts += len(result.drifts)
        changes += len(result.changes)
    seconds = time.perf_counter() - started
    segments = {user: state.membership.segment for user, state in pipeline.states.items()}
    ari, coverage = persona_agreement(segments, truth)
    used = Counter(segment for segment in segments.values() if segment != NEW_SEGMENT)
    return {
        "ARI": round(ari, 3), "coverage %": 100 * coverage, "segments used": len(used),
        "model versions": versions, "drifts": drifts, "changes": changes, "seconds": round(seconds, 1),
        "segment_sizes": dict(used),
    }


def _params(learner: LearnerConfig) -> str:
    return f"{learner.algorithm}({', '.join(f'{k}={v}' for k, v in learner.params.items())})"


def _where(trace: str) -> str:
    frames = [line.strip() for line in trace.splitlines() if line.strip().startswith("File ")]
    return frames[-1] if frames else "?"
