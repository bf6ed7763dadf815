"""Segment quality: adjusted Rand index against the simulator's personas, per River clusterer.

The default scenario (``Scenario()``, the ``segstream demo`` traffic) runs through the
embedded pipeline once per clusterer and hash seed, each in a fresh process with its own
``PYTHONHASHSEED`` (River's random-init clusterers depend on set iteration order), each
clusterer configured only through ``LearnerConfig``
(``algorithm`` names a ``river.cluster`` class exposing ``centers``, ``params`` its
constructor arguments). Scored with ``app.report.persona_agreement``: ARI over the
users that left segment "new", and that share of users (coverage). A clusterer that
fails inside the learner is reported with its error instead of a score.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

import orjson

from app.core.embedded import EmbeddedPipeline
from app.core.engine import EngineConfig
from app.core.learner import LearnerConfig
from app.core.model import NEW_SEGMENT
from app.core.simulator import Scenario, assign_personas, generate
from app.report import persona_agreement
from bench.common import Report

REPO = Path(__file__).resolve().parent.parent

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
    parser.add_argument(
        "--hash-seeds", type=int, default=3, metavar="N",
        help="run each clusterer in N processes with PYTHONHASHSEED=0..N-1 (results can depend on it)",
    )


def run(args: argparse.Namespace) -> Report:
    scenario = Scenario(users=args.users, events=args.events, seed=args.seed)
    rows, notes, errors = [], [], {}
    for name, learner in CLUSTERERS.items():
        if args.only and name not in args.only:
            continue
        runs = [_child(name, args, hash_seed) for hash_seed in range(max(1, args.hash_seeds))]
        row = {"clusterer": name, "params": _params(learner), **runs[0], "runs": runs}
        scores = [r["ARI"] for r in runs if r.get("ARI") is not None]
        row["ARI min"], row["ARI max"] = (min(scores), max(scores)) if scores else (None, None)
        if row.get("error"):
            errors[name] = row.pop("traceback", "")
            notes.append(f"{name} failed: {row['error']} (at {_where(errors[name])})")
        elif row.get("model versions") == 0:
            notes.append(f"{name}: no model was ever published, so no user left segment 'new'")
        if (row.get("error") or row.get("model versions") == 0) and learner.algorithm in LIMITS:
            notes.append(f"  why: {LIMITS[learner.algorithm]}")
        rows.append(row)
    notes.insert(0, f"workload: Scenario(users={scenario.users}, events={scenario.events}, seed={scenario.seed}), "
                    "default shift at half the stream")
    notes.insert(1, f"ARI and the other columns: the run with PYTHONHASHSEED=0; ARI min/max over "
                    f"PYTHONHASHSEED=0..{max(1, args.hash_seeds) - 1}")
    return Report(
        title=f"quality: ARI vs personas, {scenario.users:,} users, {scenario.events:,} events",
        columns=["clusterer", "ARI", "ARI min", "ARI max", "coverage %", "segments used", "model versions",
                 "drifts", "changes", "seconds"],
        rows=rows, notes=notes, data={"tracebacks": errors},
    )


def _child(name: str, args: argparse.Namespace, hash_seed: int) -> dict:
    """Score one clusterer in a fresh process with the given PYTHONHASHSEED."""
    command = [
        sys.executable, "-m", "bench.quality", name, "--users", str(args.users), "--events", str(args.events),
        "--seed", str(args.seed), "--batch", str(args.batch),
    ]
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, timeout=600)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}", "traceback": done.stderr.decode()[-3000:]}
    return {**orjson.loads(done.stdout.splitlines()[-1]), "hash_seed": hash_seed}


def score(name: str, users: int, events: int, seed: int, batch: int) -> dict:
    """One clusterer on one scenario, in this process: the row, or the error that stopped it."""
    scenario = Scenario(users=users, events=events, seed=seed)
    messages = [message.to_bytes() for message in generate(scenario)]
    try:
        return _score(messages, EngineConfig(learner=CLUSTERERS[name]), assign_personas(scenario), batch)
    except Exception as exc:  # a clusterer the learner cannot drive: report why
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=6)}


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
        "ARI": round(ari, 3) if coverage else None, "coverage %": 100 * coverage, "segments used": len(used),
        "model versions": versions, "drifts": drifts, "changes": changes, "seconds": round(seconds, 1),
        "segment_sizes": dict(used),
    }


def _params(learner: LearnerConfig) -> str:
    return f"{learner.algorithm}({', '.join(f'{k}={v}' for k, v in learner.params.items())})"


def _where(trace: str) -> str:
    frames = [line.strip() for line in trace.splitlines() if line.strip().startswith("File ")]
    return frames[-1] if frames else "?"


def main() -> int:
    """Child mode: ``python -m bench.quality NAME --users U --events E --seed S --batch B`` prints one JSON row."""
    parser = argparse.ArgumentParser()
    parser.add_argument("name", choices=list(CLUSTERERS))
    for option in ("--users", "--events", "--seed", "--batch"):
        parser.add_argument(option, type=int, required=True)
    args = parser.parse_args()
    print(orjson.dumps(score(args.name, args.users, args.events, args.seed, args.batch)).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
