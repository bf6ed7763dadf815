"""A batch that fails in the engine is processed again message by message: one message cannot take the others down.

:meth:`Engine.process` handles a batch at once. Should it raise on some input
(a defect: validation admits only what the state can hold), the whole batch
would be lost, or, in a worker, acknowledged unapplied. :func:`process_confined`
then undoes the attempt and runs every message on its own: the messages that
fail, in folding or in encoding their users' states, become :class:`Failure`\\ s
for the dead-letter topic, and the others are applied as they would have been.

>>> from app.core.engine.process import Engine, EngineConfig
>>> from app.core.events.decode import ClickEvent
>>> engine = Engine(EngineConfig())
>>> states = {}
>>> events = [ClickEvent("u1", "search", 1_767_225_600.0), ClickEvent("u2", "search", 1_767_225_601.0)]
>>> result, encoded, failures = process_confined(engine, events, states.get, forget=lambda users: None,
...                                              messages=[0, 1], encode=lambda state: b"state")
>>> sorted(result.touched), encoded["u2"], failures
(['u1', 'u2'], b'state', [])
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.engine.process import BatchResult, Engine
from app.core.events.decode import ClickEvent
from app.core.state.user import UserState


@dataclass(frozen=True)
class Failure:
    """A message the engine could not process: its name (its entry in ``messages``), and why."""

    message: Hashable
    reason: str


def process_confined(
    engine: Engine,
    events: Sequence[ClickEvent],
    lookup: Callable[[str], UserState | None],
    *,
    forget: Callable[[Collection[str]], None],
    messages: Sequence[Hashable],
    encode: Callable[[UserState], Any],
    positions: Sequence[tuple[int, int]] | None = None,
    **process: Any,
) -> tuple[BatchResult, dict[str, Any], list[Failure]]:
    """``engine.process`` over the batch; on an exception, message by message (see the module).

    Returns the result, every touched user's encoded state (encoded once: the caller
    writes these bytes) and the messages that failed.

    ``forget(users)`` drops any copy of those users' states the attempt may have
    changed, so that ``lookup`` reads them as they were before the batch: a worker's
    cache in front of its store. (The embedded pipeline changes its only copy in
    place, so it cannot use this yet.) ``encode`` is the state encoder: a state it
    cannot encode fails its message here, before anything is written.
    """
    watermark = copy.deepcopy(engine.watermark)
    try:
        result = engine.process(events, lookup, messages=messages, positions=positions, **process)
        return result, {user: encode(state) for user, state in result.touched.items()}, []
    except Exception:  # noqa: BLE001 - a defect on some input: find the message, keep the others
        engine.watermark = watermark
        forget({event.user_id for event in events})
    return _one_by_one(engine, events, lookup, forget, messages, encode, positions, process)


def _one_by_one(engine, events, lookup, forget, messages, encode, positions, process):
    merged, encoded, failures = BatchResult(), {}, []

    def current(user_id: str) -> UserState | None:
        return merged.touched.get(user_id) or lookup(user_id)

    start = 0
    while start < len(events):
        end = start + 1
        while end < len(events) and messages[end] == messages[start]:
            end += 1
        users = {event.user_id for event in events[start:end]}
        kept = {user: copy.deepcopy(merged.touched[user]) for user in users if user in merged.touched}
        watermark = copy.deepcopy(engine.watermark)
        try:
            result = engine.process(
                events[start:end], current, messages=messages[start:end],
                positions=None if positions is None else positions[start:end], **{**process, "stored": None},
            )  # fmt: skip
            fresh = {user: encode(state) for user, state in result.touched.items()}
        except Exception as exc:  # noqa: BLE001
            engine.watermark = watermark
            forget(users)
            for user in users:  # back to the state before this message
                merged.touched.pop(user, None)
            merged.touched.update(kept)
            failures.append(Failure(messages[start], f"processing failed: {type(exc).__name__}: {exc}"[:500]))
        else:
            merged.absorb(result)
            encoded.update(fresh)
        start = end
    return merged, encoded, failures
