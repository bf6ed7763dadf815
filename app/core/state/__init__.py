"""The per-user state and its record layout (:mod:`.user`): features, membership, signals, outbox."""

__all__ = ["user"]
