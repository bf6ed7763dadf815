"""The segment-change contract's version, and the ``exited`` changes of a user who leaves every segment.

A user who is erased, or withdraws consent, leaves: downstream systems that hold
their memberships (audiences in marketing tools, the Redis indexes) learn of it as
ordinary changes, with reason ``erased``. The changes carry no features: erasure
must not publish the user's data once more.

>>> from app.core.state import UserState
>>> state = UserState()
>>> state.membership.segment, state.membership.seq = "c1", 4
>>> state.signals.rules = ["big_spender"]
>>> [(c["kind"], c["segment"], c["event_id"], c["reason"]) for c in exit_changes("u1", state, 0.0, "", None)]
[('rule', 'big_spender', 'u1:5', 'erased'), ('cluster', 'c1', 'u1:6', 'erased')]
"""

from __future__ import annotations

from typing import Any

from app.core.events import format_ts
from app.core.model import ModelSnapshot
from app.core.segmenter import NEW_SEGMENT
from app.core.state import UserState

CHANGE_SCHEMA = 1  # segment-change events (README: Contracts)
ERASED = "erased"


def exit_changes(
    user_id: str, state: UserState, ts: float, emitted_at: str, model: ModelSnapshot | None
) -> list[dict[str, Any]]:
    """The ``exited`` changes of an erased user: their rule segments, then their cluster segment."""
    member = state.membership
    version = model.version if model is not None else 0
    left = [("rule", rule, rule) for rule in state.signals.rules]
    if member.segment != NEW_SEGMENT:
        name = model.name_of(member.segment) if model is not None else member.segment
        left.append(("cluster", member.segment, name))
    changes = []
    for kind, segment, name in left:
        member.seq += 1  # the same sequence as every other change of the user: ids stay unique
        changes.append({
            "schema": CHANGE_SCHEMA, "event_id": f"{user_id}:{member.seq}", "user_id": user_id, "kind": kind,
            "change": "exited", "ts": format_ts(ts), "emitted_at": emitted_at, "segment": segment,
            "segment_name": name, "previous": segment, "model_version": version, "reason": ERASED, "features": {},
        })  # fmt: skip
    return changes
