"""Event time: the watermark (:mod:`.watermark`) and which partitions are quiet, for the idle advance
(:mod:`.quiet`)."""

__all__ = ["quiet", "watermark"]
