"""The learner's checkpoint on ``segment-model``: a pickle, readable across the moves of its modules.

A checkpoint names the modules of the classes it holds. Those written before ``app/core``
was split into packages name the flat modules (``app.core.learner``); they are read
with the classes where they live now, so an upgraded learner resumes instead of
starting afresh.

>>> from app.core.segments.learner import Learner
>>> from app.core.segments.learner_config import LearnerConfig
>>> learner = Learner(LearnerConfig(), features=("conversion", "search_share"))
>>> loads(dumps(learner)).samples == learner.samples
True
>>> old = pickle.dumps(learner, protocol=2).replace(b"app.core.segments.", b"app.core.")  # class names as text
>>> type(loads(old)).__module__
'app.core.segments.learner'
>>> loads(b"not a pickle") is None
True
"""

from __future__ import annotations

import io
import pickle
from typing import Any

__all__ = ["MOVED_MODULES", "dumps", "loads"]

# Module -> where it lives now, for the modules a checkpoint can name.
MOVED_MODULES = {
    f"app.core.{old}": f"app.core.{new}"
    for old, new in (
        ("events", "events.decode"), ("state", "state.user"), ("model", "segments.model"),
        ("learner", "segments.learner"), ("learner_config", "segments.learner_config"),
        ("mixture", "segments.mixture"), ("river_mixture", "segments.river_mixture"),
        ("scaling", "segments.scaling"), ("selection", "segments.selection"), ("segmenter", "segments.segmenter"),
        ("rfm", "segments.rfm"), ("fit_monitor", "segments.fit_monitor"), ("sweep", "segments.sweep"),
    )
}  # fmt: skip


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED_MODULES.get(module, module), name)


def dumps(learner: Any) -> bytes:
    return pickle.dumps(learner)


def loads(raw: bytes) -> Any:
    """The learner of a checkpoint; None if it cannot be read (an older layout: learn afresh)."""
    try:
        return _Unpickler(io.BytesIO(raw)).load()
    except Exception:  # a checkpoint of a layout whose classes are gone
        return None
