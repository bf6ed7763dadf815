"""Erasure on request: a user leaves every segment and every pending deadline, and their state goes.

>>> from app.core.engine.process import EngineConfig
>>> engine, state = Engine(EngineConfig()), UserState()
>>> state.signals.rules = ["big_spender"]
>>> result = erase(engine, [("u1", state, "1767225000000")], emitted_at=1_767_225_600.0)
>>> [(c["change"], c["segment"], c["reason"]) for c in result.changes], result.erased
([('exited', 'big_spender', 'erased')], ['u1'])
>>> [(n["event_id"], n["erased"]) for n in result.erasures]
[('u1:erased:1767225000000', 'request')]
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import orjson

from app.core.engine.changes import REQUESTED, erasure_notice, exit_changes
from app.core.engine.process import BatchResult, Engine
from app.core.events.decode import format_ts
from app.core.state.user import UserState


def erasure_request(user_id: str, requested_at: float) -> bytes:
    """The value of one ``erasures`` record, whose key is the user id (``segstream users erase``)."""
    return orjson.dumps({"user_id": user_id, "requested_at": requested_at})


def erase(
    engine: Engine, users: Iterable[tuple[str, UserState | None, str]], *, emitted_at: float = 0.0
) -> BatchResult:
    """Users erased on request leave every segment and every pending deadline.

    ``users``: (user id, their state or None when this worker holds none, the request's
    id: its ``requested_at`` in ms). The caller deletes the states (``result.erased``);
    the changes are at the stream's latest event time. Every user gets an erasure
    notice, one this worker holds no state of too: others may hold their data.
    """
    result, emitted, latest = BatchResult(), format_ts(emitted_at), engine.watermark.max_ts
    for user_id, state, request in users:
        engine.deadlines.schedule(user_id, None)
        result.erased.append(user_id)
        ts = max(latest, state.features.last_ts) if state is not None else latest
        ts = ts if math.isfinite(ts) else emitted_at  # nothing in event time yet: the request's time
        if state is not None:
            result.changes.extend(exit_changes(user_id, state, ts, emitted, engine.model))
        result.erasures.append(erasure_notice(user_id, REQUESTED, request, ts, emitted))
    return result


def request_id(requested_at: float) -> str:
    """The id an erasure request gives its notice: its ``requested_at``, in ms."""
    return str(round(requested_at * 1000))
