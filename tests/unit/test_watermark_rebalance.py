"""The watermark across a rebalance, as the segmenting agent drives it (agents/segment_users.py)."""

from __future__ import annotations

import math

from app.core.eventtime.quiet import QuietPartitions
from app.core.eventtime.watermark import Watermark


def _rebalance(wm: Watermark, quiet: QuietPartitions, revoked, assigned, now: float) -> None:
    wm.forget(revoked)
    quiet.forget(revoked)
    wm.hold(assigned)
    quiet.assigned(assigned, now)


def test_a_partition_read_to_its_end_before_a_rebalance_does_not_hold_the_watermark_for_good():
    """Issue 12: the survivor of a two-worker kill had read its own partitions to their end; held
    again after the rebalance, they delivered nothing more, and 1,443 deadlines never fired."""
    wm, quiet = Watermark(allowed_lateness_s=0), QuietPartitions(idle_after_s=3_600)
    _rebalance(wm, quiet, revoked=[], assigned=[0, 1], now=0.0)
    for partition in (0, 1):
        wm.observe(9_000.0, partition)  # the end of the stream
        quiet.processed(partition, offset=99, now=1.0)
    # The other worker dies; this one is given all four partitions (eager: all revoked first).
    _rebalance(wm, quiet, revoked=[0, 1], assigned=[0, 1, 2, 3], now=20.0)
    quiet.resumed({0: 100, 1: 100, 2: 40, 3: 40})
    for partition, log_end in {0: 100, 1: 100, 2: 100, 3: 100}.items():
        quiet.fetched(partition, log_end, at=21.0)
    assert wm.current == -math.inf, "nothing delivered or confirmed since the assignment"

    assert wm.caught_up(quiet.caught_up(now=21.5)) == [0, 1]
    wm.set_idle(quiet.idle(now=21.5))
    for partition in (2, 3):  # the dead worker's backlog
        wm.observe(9_000.0, partition)
    assert wm.current == 9_000.0


def test_a_partition_with_unread_clicks_holds_the_watermark_until_it_delivers():
    wm, quiet = Watermark(allowed_lateness_s=0), QuietPartitions(idle_after_s=3_600)
    _rebalance(wm, quiet, revoked=[], assigned=[0, 1], now=0.0)
    quiet.resumed({0: 0, 1: 0})
    wm.observe(9_000.0, partition=0)
    quiet.processed(0, offset=9, now=1.0)
    quiet.fetched(0, log_end=10, at=1.0)
    quiet.fetched(1, log_end=50, at=1.0)  # 50 clicks of partition 1 not delivered yet

    assert wm.caught_up(quiet.caught_up(now=1.5)) == []
    assert wm.current == -math.inf
    wm.observe(2_000.0, partition=1)
    assert wm.current == 2_000.0


def test_a_stale_confirmation_releases_nothing():
    """A fetch older than fresh_fetch_s may predate clicks that arrived since: it is not trusted."""
    wm, quiet = Watermark(allowed_lateness_s=0), QuietPartitions(idle_after_s=3_600, fresh_fetch_s=10.0)
    _rebalance(wm, quiet, revoked=[], assigned=[0], now=0.0)
    quiet.resumed({0: 100})
    quiet.fetched(0, log_end=100, at=1.0)

    assert wm.caught_up(quiet.caught_up(now=30.0)) == []
    assert wm.current == -math.inf
