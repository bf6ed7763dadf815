"""The segment-change contract's version, the ``exited`` changes of a user who leaves every segment,
and the erasure notice that tells downstream systems to delete the user too.

A user who is erased, or withdraws consent, leaves: downstream systems that hold
their memberships (audiences in marketing tools, the Redis indexes) learn of it as
ordinary changes, with reason ``erased``. The changes carry no features: erasure
must not publish the user's data once more.

>>> from app.core.state.user import UserState
>>> state = UserState()
>>> state.membership.segment, state.membership.seq = "c1", 4
>>> state.signals.rules = ["big_spender"]
>>> [(c["kind"], c["segment"], c["event_id"], c["reason"]) for c in exit_changes("u1", state, 0.0, "", None)]
[('rule', 'big_spender', 'u1:5', 'erased'), ('cluster', 'c1', 'u1:6', 'erased')]
>>> erasure_notice("u1", REQUESTED, "1767225600000", 1_767_225_600.0, "")["event_id"]
'u1:erased:1767225600000'
"""

from __future__ import annotations

from typing import Any

from app.core.events.decode import format_ts
from app.core.segments.model import ModelSnapshot
from app.core.segments.segmenter import NEW_SEGMENT
from app.core.state.user import UserState

CHANGE_SCHEMA = 1  # segment-change events (README: Contracts)
ERASURE_SCHEMA = 1  # erasure notices on erased-users, and the user.erased webhook
ERASED = "erased"
REQUESTED, CONSENT_WITHDRAWN = "request", "consent_withdrawn"  # why a user was erased


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


def erasure_notice(user_id: str, why: str, source: str, ts: float, emitted_at: str) -> dict[str, Any]:
    """The notice that ``user_id``'s data was erased: ``why`` is ``request`` or ``consent_withdrawn``.

    ``source`` names what asked for it (the request's time in ms, or the event id of the
    ``consent: false`` event), so a redelivered request or event repeats the same id.
    It carries nothing about the user but the id.
    """
    return {"schema": ERASURE_SCHEMA, "event_id": f"{user_id}:erased:{source}", "user_id": user_id,
            "erased": why, "ts": format_ts(ts), "emitted_at": emitted_at}  # fmt: skip
