"""The consumer thread fetches for a snapshot of the active partitions, and for none when none are active."""

from __future__ import annotations

import asyncio
from unittest.mock import patch

from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from app.kafka.consumer import SnapshotFetchConsumer, Transport
from app.kafka.faust_app import create_app
from app.settings import load_settings

CLICKS, CHANGELOG = TP("clicks", 0), TP("user_to_state-changelog", 0)


def fetch(active: set, pause_while_waiting: set = frozenset()) -> tuple[list, dict]:
    """Run ``_getmany`` over a twin of the thread's fetch; returns what the thread was asked for, and the batch."""
    asked = []

    async def thread_fetch(self, partitions, timeout):  # aiokafka: no partitions means every partition
        asked.append(None if partitions is None else set(partitions))
        active.difference_update(pause_while_waiting)  # recovery pauses the changelogs meanwhile
        await asyncio.sleep(0)
        return {tp: ["record"] for tp in (partitions or {CLICKS, CHANGELOG})}

    consumer = object.__new__(SnapshotFetchConsumer)
    with patch.object(aiokafka_driver.Consumer, "_getmany", thread_fetch):
        batch = asyncio.run(consumer._getmany(active, 1.0))
    return asked, batch


def test_the_thread_fetches_for_the_partitions_active_when_asked_even_if_they_are_paused_meanwhile():
    active = {CHANGELOG}
    asked, batch = fetch(active, pause_while_waiting={CHANGELOG})
    assert asked == [{CHANGELOG}] and not active  # the live set emptied; the thread's copy did not
    assert set(batch) == {CHANGELOG}  # never a batch of the paused clicks


def test_no_active_partition_fetches_nothing():
    asked, batch = fetch(set())
    assert asked == [] and batch == {}


def test_the_app_consumes_through_the_snapshot_consumer():
    app = create_app(load_settings(env={}))
    assert isinstance(app.consumer, SnapshotFetchConsumer)
    assert isinstance(app.transport, Transport)

