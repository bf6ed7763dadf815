"""Profiles: what a lookup returns for a user (:mod:`.profile`), and their latest interactions
(:mod:`.interactions`)."""

__all__ = ["interactions", "profile"]
