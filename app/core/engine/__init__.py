"""The engine: a batch in, state, memberships, changes and triggers out.

:mod:`.process` folds and decides a batch; :mod:`.confine` isolates a message that fails;
:mod:`.embedded` runs the engine and the learner in one process (replay, demo);
:mod:`.changes` and :mod:`.erasure` are the exits and notices of erased users.
"""

__all__ = ["changes", "confine", "embedded", "erasure", "process"]
