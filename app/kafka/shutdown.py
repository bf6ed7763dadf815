"""A stop that cannot hang: after SIGTERM or SIGINT, the worker exits within ``shutdown_timeout_s``.

Faust's stop awaits every service in turn, and some of those awaits have no bound of
their own: a producer flush while the broker is away, an agent a supervisor restarted
during the stop (app/kafka/delivery.py). An orchestrator then kills the process without a
word. The watchdog starts with the first signal; if the process is still running when
the timeout ends, it writes one line and exits with status 1. Nothing is lost by it:
at-least-once processing redelivers whatever was not committed.

>>> import signal
>>> exits = []
>>> dog = ShutdownWatchdog(0.05, exit=exits.append, write=lambda line: None)
>>> dog.start(signal.SIGTERM); dog.start(signal.SIGTERM)  # the second signal changes nothing
>>> import time; time.sleep(0.2); exits
[1]
"""

from __future__ import annotations

import os
import signal as signals
import sys
import threading
from collections.abc import Callable

import faust


def _write_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class ShutdownWatchdog:
    """Exits the process ``timeout_s`` after the first stop signal, unless it has exited by then."""

    def __init__(
        self, timeout_s: float, *, exit: Callable[[int], None] = os._exit, write: Callable[[str], None] = _write_stderr
    ) -> None:
        self.timeout_s = timeout_s
        self._exit, self._write = exit, write
        self._timer: threading.Timer | None = None

    def start(self, signal: signals.Signals) -> None:
        if self._timer is not None:
            return
        self._timer = threading.Timer(self.timeout_s, self._expire, args=(signal,))
        self._timer.daemon = True  # a process that exits in time is not held by it
        self._timer.start()

    def _expire(self, signal: signals.Signals) -> None:
        self._write(f"segstream worker: not stopped {self.timeout_s:g} s after {signal.name}; exiting now "
                    "(shutdown_timeout_s; what was not committed is redelivered)")  # fmt: skip
        self._exit(1)


class Worker(faust.Worker):
    """Faust's worker, whose stop on a signal is bounded by a :class:`ShutdownWatchdog`."""

    def __init__(self, *args, shutdown_timeout_s: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.watchdog = ShutdownWatchdog(shutdown_timeout_s)

    def _schedule_shutdown(self, signal: signals.Signals) -> None:
        self.watchdog.start(signal)
        super()._schedule_shutdown(signal)
