"""Shared fixtures: event builders for the pure core."""

from __future__ import annotations

import pytest

from app.core.events import ClickEvent

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture
def t0() -> float:
    return T0


def click(user: str = "u1", kind: str = "page_view", ts: float = T0, **fields) -> ClickEvent:
    return ClickEvent(user, kind, ts, **fields)
