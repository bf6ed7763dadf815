"""Faust's Kafka consumer, fetching only for the partitions that are active when a fetch is asked for,
committing nothing past a failed output (app/kafka/delivery.py), and recording what it committed.

Faust hands its *live* set of active partitions to the consumer thread, which then
waits up to a second in aiokafka's ``Fetcher.fetched_records(partitions)``. When
table recovery pauses the last active partitions meanwhile (the changelogs, once
they are read), the set becomes empty, and aiokafka reads an empty set as "every
partition": it returns, and takes out of its buffer, a batch of every paused stream
partition. ``Consumer.getmany`` (faust/transport/consumer.py) then skips those
records because the partitions are paused, and their fetch positions have moved
past records nobody processed. Recovery's seek has already run by then, so they
are gone until the next rebalance: pending webhook retries were lost after a
restart in 3 of 6 runs of ``tests/faults/test_webhooks_restart.py``, with
app/kafka/recovery.py's seek already in place.

:class:`SnapshotFetchConsumer` gives the thread a copy of the set, and an empty
copy fetches nothing. A batch still in flight when its partition is paused is
dropped as before; every pause happens in a rebalance, whose recovery seeks the
partition back (app/kafka/recovery.py).
"""

from __future__ import annotations

from typing import Mapping, Optional, Set

import faust
from faust.transport import by_url
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from app.kafka.delivery import guard


# Offsets the broker has taken from this worker's commits, for the partitions it still
# reads (the agent drops revoked ones). Faust's own record of them (``_committed_offset``)
# is updated for a refused commit too; app/kafka/outbox.py needs proof.
committed_offsets: dict[TP, int] = {}


class SnapshotFetchConsumer(aiokafka_driver.Consumer):
    """Fetches for a snapshot of the active partitions; commits nothing once an output failed."""

    async def on_task_error(self, exc: BaseException) -> None:
        """An agent raised: Faust would commit here, past the batch it failed on (app/kafka/delivery.py)."""
        guard.fail(exc, "an agent")

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        """Faust's commit, after its producer flush: refused once any delivery has failed."""
        if not guard.may_commit():
            self.log.warning("not committing %d offsets: an output failed, the worker is stopping", len(offsets))
            return False
        if not await super()._commit(offsets):
            return False
        assigned = self.assignment()  # the thread leaves out partitions a rebalance took meanwhile
        committed_offsets.update((tp, offset) for tp, offset in offsets.items() if tp in assigned)
        return True

    async def _getmany(self, active_partitions: Optional[Set[TP]], timeout: float):
        if active_partitions is None:  # a client-only app: every partition
            return await super()._getmany(None, timeout)
        snapshot = frozenset(active_partitions)  # the live set changes while the thread waits
        if not snapshot:
            return {}  # aiokafka would read "no partitions" as "all partitions"
        return await super()._getmany(snapshot, timeout)


class Transport(aiokafka_driver.Transport):
    """The aiokafka transport (``kafka://``, ``aiokafka://``) with :class:`SnapshotFetchConsumer`."""

    Consumer = SnapshotFetchConsumer


def install(app: faust.App) -> None:
    """Use :class:`Transport` where the broker URL selects Faust's aiokafka transport."""
    if by_url(app.conf.broker_consumer[0]) is aiokafka_driver.Transport:
        app.transport = Transport(app.conf.broker_consumer, app)


def fetch_reports(app: faust.App, partitions: Set[TP]) -> dict[TP, tuple[Optional[int], Optional[float]]]:
    """Per partition: the log end its latest successful fetch reported, and that fetch's wall time.

    aiokafka updates both on every fetch response without an error, records or not,
    and neither while the broker is unreachable (app/core/eventtime/quiet.py relies on that).
    Its consumer runs in Faust's consumer thread: the time is read before the log
    end, so a fetch landing in between can only make the pair look older.
    """
    consumer = app.consumer._thread._consumer  # Faust keeps the aiokafka consumer private
    if consumer is None:
        return {}
    reports = {}
    for tp in partitions:
        try:
            at_ms = consumer.last_poll_timestamp(tp)
            log_end = consumer.highwater(tp)
        except AssertionError:  # no longer assigned: a rebalance is under way
            continue
        reports[tp] = (log_end, None if at_ms is None else at_ms / 1000.0)
    return reports
