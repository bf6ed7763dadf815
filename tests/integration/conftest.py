"""Every test here runs against the real broker (see tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _needs_broker(broker) -> None:
    """Fail early, with the fix, when the broker is not running."""
