"""Wait in tests for something that becomes true asynchronously, with a message when it does not."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def poll(check, what: str, timeout: float = 60.0, every: float = 0.2, detail: Callable[[], str] | None = None):
    """``check()`` until it returns something truthy; fails with ``what`` after ``timeout``,
    followed by ``detail()`` (a worker's log tail, say) as it is then."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout} s (last: {result!r})" + (f"\n{detail()}" if detail else ""))
        time.sleep(every)
