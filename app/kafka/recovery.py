"""Table recovery that seeks the stream partitions to their committed offsets *before* resuming them.

Faust's ``Recovery.on_recovery_completed`` (faust/tables/recovery.py) resumes the
stream partitions, then awaits ``Consumer.perform_seek``: one round trip to the group
coordinator per assigned partition. Meanwhile the fetcher delivers clicks from the
committed offset C on. The seek then resets ``Consumer._read_offset`` to C while
``_drain_messages`` (faust/transport/consumer.py) still holds the rest of the batch
it fetched before; its next record, C+k, looks like a hole in the log, so
``_add_gap`` marks C+1..C+k as done although they were delivered and acked. Those
offsets are then in ``_acked`` twice, ``_new_offset`` commits only up to the first
duplicate, and the committed offset moves by one per commit though the partition is
processed (tests/faults/test_restart.py: about 480 duplicates on 3 of 4 partitions).

Seeking while the partitions are still paused leaves no record of theirs in flight:
they resume from exactly the offsets the seek set.

A second fault lives in the same seek. aiokafka's ``seek_to_committed`` moves only
partitions whose committed offset is above 0; a partition the group has never
committed keeps its fetch position. But that position may already be past records
this worker never processed: ``Consumer.on_partitions_assigned`` marks every
assigned partition active before the app pauses them, the consumer thread returns
a batch for them in that window, and ``Consumer.getmany`` drops it, because the
partitions are paused by the time it looks. A partition with a committed offset is
sought back and loses nothing; one without loses that batch for good. Pending
webhook retries on a never-committed partition of ``webhooks-retry-1`` were lost
this way after a restart (``tests/faults/test_webhooks_restart.py`` failed 5 of 7
runs with this and app/kafka/consumer.py's fault), and a fresh group's first clicks are
exposed the same way. Such partitions are sought to the
log start, which is where ``consumer_auto_offset_reset = "earliest"`` reads from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from faust.tables import TableManager
from faust.tables.recovery import Recovery


class SeekBeforeResumeRecovery(Recovery):
    resumed_at: dict = {}  # stream partition -> the offset its reading resumed from, at the latest recovery
    committed_at: dict = {}  # stream partition -> its committed offset then (none if never committed)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Faust's ``on_recovery_completed`` with the seek moved before the resume."""
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(t.on_recovery_completed(self.actives_for_table[t], self.standbys_for_table[t]))
            for t in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again: generation %r, not %r", self.app.consumer_generation_id,
                             generation_id)
            return
        streams = {tp for tp in assignment if not self._is_changelog_tp(tp)}
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(self._seek_streams(streams), timeout=self.app.conf.broker_request_timeout)
            for hook in self.tables.before_resume:
                await hook(self.committed_at, self.resumed_at)
        consumer.resume_partitions(streams)  # after the seek
        self.completed.set()
        self.app.flow_control.resume()
        consumer.resume_flow()
        await self.app._fetcher.maybe_start()  # make sure the fetcher runs
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _seek_streams(self, streams: set) -> None:
        """Each stream partition to its committed offset, or to the log start if it has none."""
        consumer = self.app.consumer
        await consumer.perform_seek()  # also sets the read and committed offsets Faust keeps
        never_committed = sorted(tp for tp in streams if not consumer._committed_offset[tp])
        starts = await consumer.earliest_offsets(*never_committed) if never_committed else {}
        if never_committed:
            await consumer.seek_wait({tp: starts[tp] for tp in never_committed})
        # Nothing before these offsets is left to process (app/core/eventtime/quiet.py).
        self.resumed_at = {tp: starts[tp] if tp in starts else consumer._committed_offset[tp] for tp in streams}
        self.committed_at = {tp: self.resumed_at[tp] for tp in streams if tp not in starts}


class SeekBeforeResumeTableManager(TableManager):
    """Faust's table manager, recovering with :class:`SeekBeforeResumeRecovery`."""

    def __init__(self, app, **kwargs) -> None:
        super().__init__(app, **kwargs)
        # Called once the stream partitions are sought, before reading resumes, with the committed
        # offsets (of partitions ever committed) and the offsets reading resumes from.
        self.before_resume: list[Callable[[dict, dict], Awaitable[None]]] = []

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SeekBeforeResumeRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
