"""Segment sizes kept current from the published changes agree with a recount of the states."""

from __future__ import annotations

from app.core.engine.embedded import EmbeddedPipeline
from app.core.engine.process import EngineConfig
from app.core.segments.segment_sizes import SegmentSizes
from app.simulator import Scenario, generate


def test_sizes_from_changes_equal_a_recount_of_the_states() -> None:
    pipeline = EmbeddedPipeline(EngineConfig())
    messages = [message.to_bytes() for message in generate(Scenario(users=400, events=30_000, seed=11))]
    kept = SegmentSizes()
    for start in range(0, len(messages), 1_000):
        kept.apply(pipeline.feed(messages[start : start + 1_000], now=2e9).changes)
    kept.apply(pipeline.finish(now=2e9).changes)

    recounted = SegmentSizes()
    recounted.recount(state.to_record() for state in pipeline.states.values())

    assert {kind for kind, _ in _nonzero(recounted)} == {"cluster", "rule"}, "the scenario fills both kinds"
    assert _nonzero(kept) == _nonzero(recounted)
    assert all(n >= 0 for _, n in kept.items())


def _nonzero(sizes: SegmentSizes) -> dict[tuple[str, str], int]:
    return {key: n for key, n in sizes.items() if n}
