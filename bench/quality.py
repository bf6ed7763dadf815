"""Segment quality on data segstream was not designed for: planted personas, CDNOW, a stationary stream.

Shapes (``--shapes``), none of them segstream's own simulator:
  personas-3, personas-6, personas-9  bench/personas.py with k planted behaviours (truth known)
  cdnow                               CDNOW purchases from the lifetimes wheel (bench/public_data.py; no truth)
  stationary                          bench/personas.py, k=6, nothing changes over time (flapping)

Each runs through ``EmbeddedPipeline(EngineConfig())`` (the ``segstream replay`` engine, learning
as it goes), then ``finish``. Reported from the final model snapshot: its version, the chosen k and
its scores (``snapshot.selection`` when the model publishes one, else k = number of centroids and
no scores). ARI: ``app.report.persona_agreement`` over the users out of segment "new", with that
share as coverage. Offline: scikit-learn KMeans on the numeric ``features`` of the final profiles
(bench/offline.py), k chosen by silhouette over 2..12, its ARI over all users, and its ARI at the
planted k. ratio = segstream ARI / offline ARI (best k); ratio@k = segstream ARI / offline ARI@k.
Flapping: segment changes of kind "cluster" after a user's first one, per user-hour of event time
from that first one to the end.
RFM tier %: buyers (purchases > 0) whose profile ``rules`` hold an RFM tier (rulebook.RFM_SEGMENTS).

Targets (issue 11): chosen k = planted k, ARI >= 0.9, ratio >= 0.95; stationary: <= 0.05 changes
per user-hour; CDNOW: a model forms and >= 95% of buyers get an RFM tier.
Needs the bench extras: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import time
from collections import Counter
from datetime import datetime
from typing import Any

from app.core.engine.embedded import EmbeddedPipeline
from app.core.engine.process import EngineConfig
from app.core.rules.rulebook import RFM_SEGMENTS
from app.core.segments.learner import LearnerConfig
from app.core.segments.model import NEW_SEGMENT
from app.core.segments.segmenter import SegmenterConfig
from app.report import persona_agreement
from bench.common import Report
from bench.offline import feature_matrix, kmeans_scan, require_sklearn, scores_of
from bench.personas import PersonaSpec, build
from bench.public_data import MissingDependency, cdnow_messages, cdnow_path, cdnow_rows, cdnow_shift_years

SHAPES = ("personas-3", "personas-6", "personas-9", "cdnow", "stationary")
KS = range(2, 13)
COLUMNS = ["shape", "users", "events", "rejects", "model v", "k planted", "k chosen", "k ok", "silhouette",
           "DB", "stability", "ARI", "coverage %", "offline k", "offline sil", "offline ARI", "offline ARI@k",
           "ratio", "ratio@k", "changes/user-h", "RFM tier %", "seconds"]


# Every per-user rate, share, cadence and time-of-day feature of the catalogue (no totals).
BEHAVIOUR_FEATURES = (
    "mean_session_s", "sessions_per_active_day", "median_session_gap_h", "avg_order_value", "order_value_std",
    "basket_size", "conversion", "views_per_session", "cart_adds_per_session", "abandoned_per_session",
    "search_share", "view_to_cart", "cart_to_purchase", "checkout_to_purchase", "hour_cos", "hour_sin",
    "weekend_share", "mobile_share", "desktop_share", "mean_scroll_depth", "mean_dwell_s",
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=None, help="persona users (default 3,000; --quick 600)")
    parser.add_argument("--seed", type=int, default=7, help="persona generator and offline KMeans seed")
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES), help="run only these shapes")
    parser.add_argument("--quick", action="store_true", help="small sizes: 600 persona users, 3,000 CDNOW customers")
    parser.add_argument("--cdnow-customers", type=int, default=None, help="first N CDNOW customers (default all)")
    parser.add_argument("--batch", type=int, default=2_000, help="messages per engine batch")
    parser.add_argument(
        "--model-features", choices=("default", "behaviour"), default="default",
        help="the model's candidate features: SegmenterConfig's default, or BEHAVIOUR_FEATURES (the catalogue's "
        "cadence, funnel, order value, local time and device features too)",
    )
    parser.add_argument("--n-clusters", default=None, help='LearnerConfig.n_clusters: a number or "auto"')


def run(args: argparse.Namespace) -> Report:
    try:
        require_sklearn()
        if "cdnow" in args.shapes:
            cdnow_path()  # fails early, with the install command, when lifetimes is missing
    except MissingDependency as exc:
        raise SystemExit(f"python -m bench quality: {exc}") from None
    users = args.users or (600 if args.quick else 3_000)
    customers = args.cdnow_customers or (3_000 if args.quick else None)
    rows, notes, details = [], [], {}
    for shape in (s for s in SHAPES if s in args.shapes):
        started = time.perf_counter()
        messages, truth, planted, about = _load(shape, users, args.seed, customers)
        row, detail = _measure(shape, messages, truth, planted, args)
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        details[shape] = detail
        notes.append(f"{shape}: {about}; " + detail.pop("note"))
    first = next(iter(details.values()), {})
    notes.append(f"offline features ({len(first.get('features', []))}, read from the profiles at run time): "
                 f"{', '.join(first.get('features', []))}")
    notes.append("targets: k ok; ARI >= 0.9; ratio >= 0.95; stationary changes/user-h <= 0.05; "
                 "cdnow: model v > 0 and RFM tier % >= 95")
    return Report(title=f"quality: segments on data segstream was not designed for ({users:,} persona users)",
                  columns=COLUMNS, rows=rows, notes=notes, data={"details": details})


def _load(shape: str, users: int, seed: int, customers: int | None):
    """(messages, truth or None, planted k or None, a description)."""
    if shape == "cdnow":
        shift = cdnow_shift_years()
        rows = cdnow_rows(customers=customers)
        about = (f"CDNOW_master.txt, {len({r[0] for r in rows}):,} customers, {len(rows):,} purchases"
                 + (f", dates shifted +{shift} years (1997 still rejected)" if shift else ", real 1997-1998 dates"))
        return list(cdnow_messages(rows, shift_years=shift)), None, None, about
    spec = PersonaSpec(k=6, users=users, seed=seed, stationary=True) if shape == "stationary" else \
        PersonaSpec(k=int(shape.split("-")[1]), users=users, seed=seed)
    messages, truth = build(spec)
    sizes = ", ".join(f"{n} {c}" for n, c in Counter(truth.values()).most_common())
    return messages, truth, spec.k, f"{spec.days} days, seed {seed}, stationary {spec.stationary} ({sizes})"


def _measure(shape: str, messages: list[bytes], truth, planted, args) -> tuple[dict, dict]:
    pipeline = EmbeddedPipeline(_config(args.model_features, args.n_clusters))
    rejects: Counter = Counter()
    entered: dict[str, float] = {}  # user -> event time of its first cluster change
    later = versions = drifts = events = 0
    now = time.time()
    for start in range(0, len(messages), args.batch):
        result = pipeline.feed(messages[start : start + args.batch], now=now)
        events += len(result.event_times)
        versions += len(result.models)
        drifts += len(result.drifts)
        rejects.update(r.reason[:60] for r in result.rejects)
        for change in result.changes:
            if change.get("kind") != "cluster":
                continue
            user = change["user_id"]
            if user in entered:
                later += 1
            else:
                entered[user] = datetime.fromisoformat(change["ts"].replace("Z", "+00:00")).timestamp()
    pipeline.finish(now=now)
    profiles = list(pipeline.profiles())
    end = pipeline.engine.watermark.max_ts
    hours = sum(end - ts for ts in entered.values()) / 3600
    snapshot = pipeline.engine.model
    selection = getattr(snapshot, "selection", None) or {}
    segments = {p["user_id"]: p["segment"] for p in profiles}
    used = Counter(s for s in segments.values() if s != NEW_SEGMENT)
    k_chosen = selection.get("k", len(snapshot.centroids) if snapshot is not None else None)

    x, names, users = feature_matrix(profiles)
    scan = kmeans_scan(x, KS, args.seed)
    best = max((k for k in scan if scan[k]["silhouette"] is not None), key=lambda k: scan[k]["silhouette"],
               default=None)
    row: dict[str, Any] = {
        "shape": shape, "users": len(profiles), "events": events, "rejects": sum(rejects.values()),
        "model v": snapshot.version if snapshot is not None else 0, "k planted": planted, "k chosen": k_chosen,
        "k ok": None if planted is None or k_chosen is None else ("yes" if k_chosen == planted else "no"),
        "silhouette": selection.get("silhouette"), "DB": selection.get("davies_bouldin"),
        "stability": selection.get("stability"), "offline k": best,
        "offline sil": scan[best]["silhouette"] if best else None,
        "changes/user-h": later / hours if hours else None, "RFM tier %": _rfm_tier_share(profiles, pipeline),
    }
    seg_sil, seg_db = _segstream_scores(x, users, segments, args.seed)
    if truth is not None:
        ari, coverage = persona_agreement(segments, truth)
        row.update({"ARI": ari if coverage else None, "coverage %": 100 * coverage})
        from sklearn.metrics import adjusted_rand_score

        labels = [truth[u] for u in users]
        if best:
            row["offline ARI"] = float(adjusted_rand_score(labels, scan[best]["labels"]))
        if planted in scan:
            row["offline ARI@k"] = float(adjusted_rand_score(labels, scan[planted]["labels"]))
        if row.get("ARI") is not None:
            row["ratio"] = row["ARI"] / row["offline ARI"] if row.get("offline ARI") else None
            row["ratio@k"] = row["ARI"] / row["offline ARI@k"] if row.get("offline ARI@k") else None
    else:
        row["coverage %"] = 100 * sum(used.values()) / len(profiles) if profiles else 0.0
    by_k = ", ".join(f"{k}: {_fmt(s['silhouette'])}" for k, s in scan.items())
    note = (f"model versions published {versions}, drifts {drifts}, segments used {len(used)} "
            f"(sizes {dict(used.most_common())}); selection "
            f"{'candidates ' + str(selection.get('candidates')) if selection else 'not published (k = centroids)'}; "
            f"segstream segments on the offline features: silhouette {_fmt(seg_sil)}, DB {_fmt(seg_db)}; "
            f"offline silhouette by k {by_k}; "
            f"cluster changes after the first {later} over {hours:,.0f} user-hours"
            + (f"; rejects {dict(rejects.most_common(3))}" if rejects else "")
            + (f"; {_rfm_note(profiles, pipeline)}" if truth is None else ""))
    return row, {"note": note, "features": names, "selection": selection, "segment_sizes": dict(used),
                 "offline": {k: {key: v for key, v in s.items() if key != "labels"} for k, s in scan.items()}}


def _config(model_features: str, n_clusters: str | None) -> EngineConfig:
    segmenter = SegmenterConfig() if model_features == "default" else SegmenterConfig(features=BEHAVIOUR_FEATURES)
    learner = LearnerConfig()
    if n_clusters is not None:
        learner = replace(learner, n_clusters=n_clusters if n_clusters == "auto" else int(n_clusters))
    return EngineConfig(segmenter=segmenter, learner=learner)


def _segstream_scores(x, users, segments, seed):
    rows = [i for i, u in enumerate(users) if segments.get(u, NEW_SEGMENT) != NEW_SEGMENT]
    if len(rows) < 3:
        return None, None
    return scores_of(x[rows], [segments[users[i]] for i in rows], seed)


def _tiers(pipeline: EmbeddedPipeline) -> set[str]:
    return set(pipeline.config.rules.segments) & set(RFM_SEGMENTS)


def _buyers(profiles) -> list[dict]:
    return [p for p in profiles if (p["features"].get("purchases") or p["features"].get("frequency") or 0) > 0]


def _rfm_tier_share(profiles, pipeline) -> float | None:
    buyers, tiers = _buyers(profiles), _tiers(pipeline)
    if not buyers:
        return None
    return 100 * sum(1 for p in buyers if tiers & set(p["rules"])) / len(buyers)


def _rfm_note(profiles, pipeline) -> str:
    buyers = _buyers(profiles)
    scored = sum(1 for p in buyers if all(p["features"].get(s) is not None for s in ("r_score", "f_score", "m_score")))
    tiers = Counter(t for p in buyers for t in p["rules"] if t in _tiers(pipeline))
    share = 100 * scored / len(buyers) if buyers else 0.0
    return f"buyers {len(buyers):,}, with RFM scores in their features {share:.1f}%, tiers {dict(tiers)}"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"
