"""Triggers: per-user signals and pending deadlines (:mod:`.signals`), and the index of when each is due
(:mod:`.deadlines`)."""

__all__ = ["deadlines", "signals"]
