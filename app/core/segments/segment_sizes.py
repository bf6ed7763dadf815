"""How many users each segment holds, kept current from segment changes, not by rescanning states.

A worker counts the users whose state it owns: recount once from the stored
states when partitions are assigned, then apply each batch's changes. Summed
over workers (Prometheus ``sum by (kind, segment)``) the counts are the whole.

Users still in the cluster segment ``new`` are not counted: no change is
published when a user first appears, so no change could keep that count current.

>>> sizes = SegmentSizes()
>>> sizes.recount([[4, {}, ["s1", 0.0, 1, 3], None, [["vip"], [], [], [], {}], []]])
>>> sizes.apply([{"kind": "cluster", "change": "moved", "previous": "s1", "segment": "s2"},
...              {"kind": "rule", "change": "exited", "segment": "vip"},
...              {"kind": "cluster", "change": "entered", "previous": "new", "segment": "s1"}])
>>> sorted(sizes.items())
[(('cluster', 's1'), 1), (('cluster', 's2'), 1), (('rule', 'vip'), 0)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.core.segments.model import NEW_SEGMENT
from app.core.state.user import rules_in, segment_in

CLUSTER, RULE = "cluster", "rule"


class SegmentSizes:
    """Users per ``(kind, segment)``; a segment emptied by changes stays listed with 0."""

    __slots__ = ("_sizes",)

    def __init__(self) -> None:
        self._sizes: dict[tuple[str, str], int] = {}

    def recount(self, records: Iterable[list[Any]]) -> None:
        """Start again from user-state records (``UserState.to_record`` lists, any schema)."""
        self._sizes = {}
        for record in records:
            self.count(record)

    def count(self, record: list[Any]) -> None:
        """Add one user-state record's segments (a recount a record at a time)."""
        sizes = self._sizes
        segment = segment_in(record)
        if segment != NEW_SEGMENT:
            sizes[CLUSTER, segment] = sizes.get((CLUSTER, segment), 0) + 1
        for rule in rules_in(record):
            sizes[RULE, rule] = sizes.get((RULE, rule), 0) + 1

    def clear(self) -> None:
        self._sizes = {}

    def apply(self, changes: Iterable[Mapping[str, Any]]) -> None:
        """Move users as the published segment changes say (``app.core.engine.process`` builds them)."""
        sizes = self._sizes
        for change in changes:
            kind, segment = change["kind"], change["segment"]
            if kind == CLUSTER and change["change"] == "exited":  # an erased user leaves without a next segment
                sizes[CLUSTER, segment] = sizes.get((CLUSTER, segment), 0) - 1
            elif kind == CLUSTER:
                previous = change["previous"]
                if previous != NEW_SEGMENT:
                    sizes[CLUSTER, previous] = sizes.get((CLUSTER, previous), 0) - 1
                sizes[CLUSTER, segment] = sizes.get((CLUSTER, segment), 0) + 1
            else:
                step = 1 if change["change"] == "entered" else -1
                sizes[RULE, segment] = sizes.get((RULE, segment), 0) + step

    def items(self) -> list[tuple[tuple[str, str], int]]:
        return list(self._sizes.items())

    def of(self, kind: str, segment: str) -> int:
        return self._sizes.get((kind, segment), 0)
