"""Rule segments: the language (:mod:`.language`), the compiled rulebook (:mod:`.rulebook`)
and its evaluation over a batch (:mod:`.evaluate`)."""

__all__ = ["evaluate", "language", "rulebook"]
