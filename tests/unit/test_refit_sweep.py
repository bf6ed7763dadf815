"""Memberships follow the newest fit, however unevenly the partitions of a stream are read."""

from __future__ import annotations

import random
import zlib
from collections import deque

from app.core.engine.embedded import EmbeddedPipeline
from app.core.engine.process import EngineConfig
from app.simulator import Scenario, generate

PARTITIONS = 4
ORDER_SEED = 1  # an order in which, before refits re-decided users, 10.7% kept a weaker fit's segment


def read_unevenly(order_seed: int) -> list[list[bytes]]:
    """The simulator's messages in batches as a consumer might fetch them: partitions read at unequal rates.

    Each partition keeps its own order; some are read far ahead of others, so their
    users' events are all decided while the model is still young.
    """
    rng = random.Random(order_seed)
    queues = [deque() for _ in range(PARTITIONS)]
    for message in generate(Scenario(users=2_000, events=100_000, seed=7)):
        queues[zlib.crc32(message.key.encode()) % PARTITIONS].append(message.to_bytes())
    rates = [rng.random() ** 3 for _ in range(PARTITIONS)]
    batches = []
    while any(queues):
        batch, budget = [], 1_000
        ready = [p for p in range(PARTITIONS) if queues[p]]
        rng.shuffle(ready)
        for p in ready:
            if len(ready) > 1 and rng.random() > rates[p]:
                continue
            n = min(len(queues[p]), rng.randint(1, 1_000), budget)
            batch.extend(queues[p].popleft() for _ in range(n))
            budget -= n
        if batch:
            batches.append(batch)
    return batches


def agreement_with_final_model(pipeline: EmbeddedPipeline) -> float:
    """Share of placed users whose segment is the one the final model gives them."""
    engine = pipeline.engine
    placed = [(user, state) for user, state in pipeline.states.items() if state.membership.segment != "new"]
    scores = engine.segmenter.scores([engine.vector(state.features) for _, state in placed])
    best = [engine.model.segment_ids[row.argmin()] for row in scores]
    return sum(state.membership.segment == b for (_, state), b in zip(placed, best, strict=True)) / len(placed)


def test_users_of_a_partition_read_first_follow_the_later_fits():
    """Users whose events were all decided by early fits are re-decided by the later ones (0.893 agreed before)."""
    pipeline = EmbeddedPipeline(EngineConfig())
    for batch in read_unevenly(ORDER_SEED):
        pipeline.feed(batch, now=2e9)
    assert pipeline.engine.model.version > 5, "the order must see several fits"
    assert agreement_with_final_model(pipeline) >= 0.98  # before the end of input, as a worker would be
