"""The worker's one engine: the clicks agent folds events with it, the others read its model."""

from __future__ import annotations

from app.core.engine import Engine
from app.main import settings

engine = Engine(settings.engine)
