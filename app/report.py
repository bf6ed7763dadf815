"""Plain-text reports of the embedded pipeline: the live segment table and segment quality."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from app.core.engine.embedded import EmbeddedPipeline
from app.core.segments.model import NEW_SEGMENT
from app.core.segments.quality import adjusted_rand_index


def segment_table(pipeline: EmbeddedPipeline, top: int = 3) -> str:
    """One row per segment: id, size, name and its most distinctive features (z-scores)."""
    sizes = Counter(state.membership.segment for state in pipeline.states.values())
    model = pipeline.engine.model
    rows = [f"{'segment':<8} {'users':>7}  {'name':<44} top features (z)"]
    if model is not None:
        for segment, name, centroid in sorted(zip(model.segment_ids, model.names, model.centroids, strict=True)):
            ranked = sorted(range(len(centroid)), key=lambda i: -abs(centroid[i]))[:top]
            features = ", ".join(f"{model.features[i]} {centroid[i]:+.1f}" for i in ranked)
            rows.append(f"{segment:<8} {sizes.get(segment, 0):>7,}  {name:<44} {features}")
    rows.append(f"{NEW_SEGMENT:<8} {sizes.get(NEW_SEGMENT, 0):>7,}  {'(not enough evidence yet)':<44}")
    version = f"model v{model.version}" if model else "no model yet (warming up)"
    return "\n".join([*rows, f"{len(pipeline.states):,} users · {version}"])


def rule_table(pipeline: EmbeddedPipeline, triggers: Mapping[str, int]) -> str:
    """Users in each rule segment now, and the triggers fired so far by name."""
    sizes = Counter(name for state in pipeline.states.values() for name in state.signals.rules)
    rules = pipeline.config.rules.segments
    rows = [f"{'rule segment':<16} {'users':>7}  rule"]
    rows += [f"{name:<16} {sizes.get(name, 0):>7,}  {text}" for name, text in rules.items()]
    fired = " · ".join(f"{name} {count:,}" for name, count in sorted(triggers.items())) or "none"
    return "\n".join([*rows, f"triggers fired: {fired}"])


def persona_agreement(segments: Mapping[str, str], truth: Mapping[str, str]) -> tuple[float, float]:
    """(ARI over users that have left "new", share of users that have) against the true personas."""
    assigned = [user for user, segment in segments.items() if segment != NEW_SEGMENT and user in truth]
    coverage = len(assigned) / len(truth) if truth else 0.0
    if not assigned:
        return 0.0, coverage
    ari = adjusted_rand_index([truth[user] for user in assigned], [segments[user] for user in assigned])
    return ari, coverage
