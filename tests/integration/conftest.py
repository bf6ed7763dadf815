"""Every test here runs against the real broker (see tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _needs_broker(broker) -> None:
    """Fail early, with the fix, when the broker is not running."""


@pytest.fixture
def dedicated_redis():
    """A redis-server of this test's own (tests/redis_harness.py), killed at the end."""
    from tests.redis_harness import DedicatedRedis

    server = DedicatedRedis().start()
    try:
        yield server
    finally:
        server.kill()
