"""Webhooks out: one attempt, signed (:mod:`.delivery`), and retries and dead letters (:mod:`.dispatch`)."""

__all__ = ["delivery", "dispatch"]
