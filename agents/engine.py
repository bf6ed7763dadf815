"""The worker's one engine and its segment sizes: the clicks agent keeps both, the others read them."""

from __future__ import annotations

from app import metrics
from app.core.engine import Engine
from app.core.segment_sizes import SegmentSizes
from app.main import settings

engine = Engine(settings.engine)
segment_sizes = SegmentSizes()  # users per segment among this worker's states
metrics.segment_users.follow(segment_sizes.items)
