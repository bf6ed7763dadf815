"""No offset is committed past work whose outputs failed: the worker stops instead, with exit status 1.

Two paths let Faust commit offsets whose outputs were never written:

- A send that fails (a record over the broker's size limit, a topic that is gone)
  fails its delivery future. Faust flushes the producer before each commit, but a
  flush only waits; it does not look at the outcome, and the commit goes ahead.
- An exception that leaves an agent's body reaches Faust's ``on_task_error``, which
  *commits*, and the supervisor restarts the agent on the next batch. The batch that
  failed was acked by ``take_events`` on the way out. The agents run each batch
  through :meth:`DeliveryGuard.run`, and the worker's consumer overrides
  ``on_task_error`` for anything else.

:data:`guard` tracks the delivery futures of the worker's sends and records the first
failure of either kind. The worker's consumer (app/kafka/consumer.py) then refuses every
commit and asks the worker to stop. A restart resumes from the last offsets committed
before the failure: every message whose state had not reached the changelog is
processed again. One loss is left: a batch whose states reached the changelog while
its segment changes were refused is marked applied, and a redelivery skips it (see
README, Known problems). Sending the states only once the outputs are delivered closes
that, but then a crash between the two re-emits changes under a newer model: the same
ids with other content (tests/faults/test_restart.py, 175 of 13,128 changes).

>>> import asyncio
>>> async def demo():
...     guard = DeliveryGuard(stop=lambda: None)
...     ok, lost = asyncio.get_running_loop().create_future(), asyncio.get_running_loop().create_future()
...     guard.track(ok); guard.track(lost)
...     ok.set_result(None); lost.set_exception(ValueError("MessageSizeTooLarge"))
...     return guard.may_commit(), repr(guard.failure)
>>> asyncio.run(demo())
(False, "ValueError('MessageSizeTooLarge')")
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


def _stop_this_worker() -> None:
    """SIGTERM to this process: Faust's graceful stop, within its shutdown timeout."""
    os.kill(os.getpid(), signal.SIGTERM)


class DeliveryGuard:
    """The delivery futures of the worker's sends, and the first failure of any output."""

    def __init__(self, stop: Callable[[], None] = _stop_this_worker) -> None:
        self._pending: list[asyncio.Future] = []
        self._stop = stop
        self.failure: BaseException | None = None

    def track(self, future: asyncio.Future) -> None:
        self._pending.append(future)

    def fail(self, reason: BaseException, where: str) -> None:
        """An output failed: no commit from now on, and the worker stops."""
        if self.failure is None:
            self.failure = reason
            log.critical("%s failed, stopping without committing past it: %r", where, reason)
            self._stop()

    async def run(self, work: Coroutine[Any, Any, Any], where: str) -> None:
        """An agent's work on one batch: an exception fails the worker instead of the agent.

        Raised out of the agent, it would reach ``on_task_error`` (below) anyway, but
        Faust's supervisor restarts the agent at once, and that restart races the stop:
        the restarted agent was seen never to be cancelled, and the stop hung (3 of 13
        runs with a refused topic; none of 12 since). After a failure, batches are
        passed over until the worker has stopped; nothing of them is committed.
        """
        if self.failure is not None:
            work.close()
            return
        try:
            await work
        except Exception as exc:  # noqa: BLE001 - recorded; the worker stops
            self.fail(exc, where)

    def raise_failed(self) -> None:
        """Raise the first failure (a failed delivery included); forget the deliveries that succeeded."""
        still_pending = []
        for future in self._pending:
            if not future.done():
                still_pending.append(future)
            elif not future.cancelled() and future.exception() is not None:
                self.fail(future.exception(), "a delivery")
        self._pending = still_pending
        if self.failure is not None:
            raise self.failure

    async def delivered_after(self, flush: Callable[[], Awaitable[Any]]) -> bool:
        """Flush the producer; then whether every output sent so far was delivered (False once any failed)."""
        await flush()
        await asyncio.sleep(0)  # the delivery callbacks of the flushed batches run first
        return self.may_commit()

    def may_commit(self) -> bool:
        """False once any output has failed; the deliveries are looked at first."""
        try:
            self.raise_failed()
        except BaseException:  # noqa: BLE001 - the failure is recorded, not handled here
            return False
        return True


guard = DeliveryGuard()
