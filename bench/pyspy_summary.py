"""Summarise a ``py-spy record -f raw`` profile of a segstream worker into where the time goes.

Each sample is put in the first bucket whose marker appears in its stack (innermost
segstream code first, then Faust, then the rest), so the shares add up to 100%.

    python -m bench.pyspy_summary PROFILE.txt [--top 25]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

# (bucket, markers): the first bucket with a marker in any frame of the stack wins.
BUCKETS = (
    ("start-up (imports)", ("<frozen importlib._bootstrap>",)),
    ("aiokafka consumer thread", ("Thread._bootstrap",)),
    ("segstream: decode + validate", ("_decode (agents/", "decode_message (app/core/")),
    ("segstream: engine (features, segmenter)", ("Engine.process", "app/core/")),
    ("segstream: state encode + changelog batches", ("UserStateCache.write", "encode_state")),
    ("segstream: learner", ("learn_segments (agents/",)),
    ("segstream: output sends", ("Topic.send", "segment_changes.send", "model_samples.send")),
    ("segstream: other agent code", ("(agents/", "(tables/", "(app/kafka/model_feed")),
    ("faust: stream / take_events buffering", ("faust/streams.py",)),
    ("faust + aiokafka: producer", ("faust/transport/producer", "aiokafka/producer")),
    ("faust: consumer fetch, drain, conductor", ("faust/transport/",)),
    ("asyncio event loop and mode services", ("asyncio/", "mode/")),
)


def summarise(path: str) -> tuple[int, Counter, Counter]:
    buckets: Counter = Counter()
    leaves: Counter = Counter()
    total = 0
    with open(path) as profile:
        for line in profile:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            frames = stack.split(";")
            leaves[frames[-1]] += n
            buckets[next((name for name, marks in BUCKETS if any(m in stack for m in marks)), "other")] += n
    return total, buckets, leaves


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25, help="innermost frames to list")
    args = parser.parse_args()
    total, buckets, leaves = summarise(args.profile)
    print(f"{total:,} samples in {args.profile}")
    for name, n in buckets.most_common():
        print(f"{100 * n / total:6.1f}%  {name}")
    print(f"\ntop {args.top} innermost frames (self time):")
    for frame, n in leaves.most_common(args.top):
        print(f"{100 * n / total:6.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
