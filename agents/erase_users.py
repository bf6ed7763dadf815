"""``erase_users``: erasure requests in; every copy of the user's data this worker controls, out.

A request on ``erasures`` (``{"user_id": …}``, keyed by user_id; ``segstream users
erase`` writes them) reaches the worker that owns the user's state, since the topic
is co-partitioned with the clicks. For each user it:

- publishes an ``exited`` change, reason ``erased``, for every segment they were in
  (app/core/engine/erasure.py), and an erasure notice on ``erased-users`` (the ``user.erased``
  webhook), and waits until the broker has them, before anything is deleted;
- deletes the state from the table and its cache, and tombstones it in the changelog;
  their pending triggers and deadlines go with it;
- removes the Redis profile and the user from every segment index;
- tells the learner, which drops the user's sample and writes a checkpoint without it.

It takes turns with the clicks agent (one lock), so no batch writes a state back that
an erasure has just deleted. A request for a user this worker holds no state of (a new
user, a repeated request) still clears Redis and the learner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson
from faust.types import EventT

from app.core.engine.erasure import erase, request_id
from app.kafka.cancel_safe import batches, finish_before_cancel
from app.kafka.delivery import guard

if TYPE_CHECKING:
    from agents.segment_users import ClickSegmenting
    from agents.worker_app import WorkerApp

log = logging.getLogger(__name__)


def register(worker: WorkerApp, clicks: ClickSegmenting) -> None:
    """The erasure agent on ``worker``; it takes turns with the clicks agent (``clicks.deciding``)."""

    @worker.app.agent(worker.topics.erasures, name=f"{__name__}.erase_users", concurrency=1)
    async def erase_users(stream):
        """Per batch of requests: exits published, then state, Redis and learner data removed."""
        async for batch in batches(stream, 500, 0.5, events=True):
            await guard.run(finish_before_cancel(_erase_batch(worker, clicks, batch)), "the erasure agent")


async def _erase_batch(worker: WorkerApp, clicks: ClickSegmenting, batch: Sequence[EventT]) -> None:
    users: dict[str, tuple[int, str]] = {}  # user id -> (their partition: the request's, co-partitioned; request id)
    for event in batch:
        message = event.message
        try:
            request = orjson.loads(event.value)
            user_id, requested_at = request["user_id"], request.get("requested_at")
            if not isinstance(user_id, str) or not user_id:
                raise ValueError("user_id must be a non-empty string")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
            log.warning("erasure request %s/%d ignored: %s", message.topic, message.offset, exc)
            continue
        # The notice's id comes from the request, so a redelivered request repeats it.
        known = isinstance(requested_at, int | float) and not isinstance(requested_at, bool)
        request_key = request_id(requested_at) if known else f"{message.partition}-{message.offset}"
        users[user_id] = (message.partition, request_key)
    if not users:
        return
    now = time.time()
    owned, states = clicks.owned_partitions(), worker.states
    async with clicks.deciding:
        # Another worker's standby copy is not ours to publish exits for; its owner does.
        found = [(user_id, states.get(user_id) if partition in owned else None, request)
                 for user_id, (partition, request) in users.items()]  # fmt: skip
        result = erase(worker.engine, found, emitted_at=now)
        records = [(kind, users[out["user_id"]][0], out["user_id"].encode(), orjson.dumps(out))
                   for kind, outputs in (("change", result.changes), ("erasure", result.erasures))
                   for out in outputs]  # fmt: skip
        await clicks.send_outputs(records)
        # The state goes only once its exits and notices are delivered. A worker killed or
        # refused before then is handed the request again, and the state is still there to
        # say which segments to exit: exits sent and then deleted with it were lost for good.
        if not await guard.delivered_after(worker.app.producer.flush):
            return  # the worker stops (app/kafka/delivery.py); nothing of this batch is committed
        await states.erase({user: users[user][0] for user in result.erased})
        clicks.observe_outputs(result.changes, [])
    guard.track(await worker.topics.model_samples.send(value=orjson.dumps({"erase": result.erased})))
    log.info("erased %d users (%d segment exits)", len(result.erased), len(result.changes))
