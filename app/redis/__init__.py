"""What talks to Redis: the profile store (:mod:`.profiles`) and the materialiser that follows the
user-state changelog into it (:mod:`.materialiser`)."""

__all__ = ["materialiser", "profiles"]
