"""Wait in tests for something that becomes true asynchronously, with a message when it does not."""

from __future__ import annotations

import time

import pytest


def poll(check, what: str, timeout: float = 60.0, every: float = 0.2):
    """``check()`` until it returns something truthy; fails with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout} s (last: {result!r})")
        time.sleep(every)
