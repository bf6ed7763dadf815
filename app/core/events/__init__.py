"""Click events: the contract, decoding and validation (:mod:`.decode`), and dead letters (:mod:`.deadletter`)."""

__all__ = ["deadletter", "decode"]
