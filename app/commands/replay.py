"""``segstream replay FILE --out DIR``: the engine over a file, no server needed."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from app.core.engine.embedded import EmbeddedPipeline, FeedResult
from app.core.segments.model import ModelSnapshot
from app.replay_io import OutputDir, read_messages


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("replay", help="run the engine over a JSON Lines or CSV file")
    parser.add_argument("file", type=Path, help="clicks as JSON Lines (one message per line) or CSV")
    parser.add_argument("--out", type=Path, required=True, help="directory for the output files")
    parser.add_argument("--model", type=Path, help="start from this model.json (from an earlier replay)")
    parser.add_argument("--no-learn", action="store_true", help="keep the --model fixed; do not learn")
    parser.add_argument("--batch", type=int, default=2_000, help="messages per engine batch (default 2000)")
    parser.set_defaults(run=run)


@dataclass
class ReplayStats:
    messages: int = 0
    outcomes: Counter = field(default_factory=Counter)
    dead_letters: int = 0
    changes: int = 0
    drifts: int = 0
    triggers: int = 0
    seconds: float = 0.0

    @property
    def events(self) -> int:
        return sum(self.outcomes.values()) + self.dead_letters


def replay(
    pipeline: EmbeddedPipeline,
    messages: Iterable[tuple[int, bytes]],
    *,
    batch_size: int,
    on_batch: Callable[[FeedResult, list[int]], None],
    clock: Callable[[], float] = time.time,
) -> ReplayStats:
    """Feed ``messages`` in batches; ``on_batch`` sees each result with the batch's line numbers."""
    stats = ReplayStats()
    started = time.perf_counter()
    lines: list[int] = []
    raws: list[bytes] = []

    def flush() -> None:
        # now: the wall clock, so events over a day (max_future_s's default) ahead of it are dead letters,
        # and history of any age since 1970 is not (min_event_time, when set, is the pipeline's floor).
        result = pipeline.feed(raws, now=clock())
        stats.messages += len(raws)
        stats.outcomes.update(result.outcomes)
        stats.dead_letters += len(result.rejects)
        stats.changes += len(result.changes)
        stats.drifts += len(result.drifts)
        stats.triggers += len(result.triggers)
        on_batch(result, lines)
        lines.clear()
        raws.clear()

    for number, raw in messages:
        lines.append(number)
        raws.append(raw)
        if len(raws) >= batch_size:
            flush()
    if raws:
        flush()
    # End of input: the stream is complete up to its last event time; deadlines due by then fire.
    on_batch(pipeline.finish(now=clock()), [])
    stats.seconds = time.perf_counter() - started
    return stats


def _load_model(path: Path) -> ModelSnapshot | None:
    """The model in ``path`` (an earlier replay's model.json); None if that replay formed none."""
    try:
        doc = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read --model {path}: {exc.strerror}") from exc
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"--model {path} is not JSON: {exc}") from exc
    if doc is None:  # the replay that wrote it had too few users with evidence for a model
        print(f"segstream replay: --model {path} holds no model (its replay formed none); learning from scratch",
              file=sys.stderr)  # fmt: skip
        return None
    try:
        return ModelSnapshot.from_dict(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"--model {path} is not a segstream model: {type(exc).__name__}: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    from app.settings import load_settings

    settings = load_settings()
    if not args.file.is_file():
        print(f"segstream replay: no such file: {args.file}", file=sys.stderr)
        return 2
    try:
        model = _load_model(args.model) if args.model else None
    except ValueError as exc:
        print(f"segstream replay: {exc}", file=sys.stderr)
        return 2
    if args.no_learn and model is None:
        print("segstream replay: --no-learn needs --model, with a model in it", file=sys.stderr)
        return 2
    pipeline = EmbeddedPipeline(
        settings.engine, model=model, learn=not args.no_learn, min_event_time=settings.min_event_time
    )
    out = OutputDir(args.out, str(args.file))
    progress = Progress(args.file.stat().st_size)

    def on_batch(result: FeedResult, lines: list[int]) -> None:
        out.write(result, lines)
        progress.update()

    stats = replay(pipeline, progress.track(read_messages(args.file)), batch_size=args.batch, on_batch=on_batch)
    progress.close()
    out.finish(pipeline)
    print(summary(stats, pipeline, args.out))
    return 0


def summary(stats: ReplayStats, pipeline: EmbeddedPipeline, out: Path | None) -> str:
    rate = stats.events / stats.seconds if stats.seconds else 0.0
    model = pipeline.engine.model
    parts = [
        f"{stats.events:,} events in {stats.messages:,} messages, {stats.seconds:.1f} s ({rate:,.0f} events/s)",
        f"  valid {stats.outcomes['ok']:,} · late {stats.outcomes['late']:,} · "
        f"duplicate {stats.outcomes['duplicate']:,} · dead letters {stats.dead_letters:,}",
        f"  users {len(pipeline.states):,} · segment changes {stats.changes:,} · triggers {stats.triggers:,} · "
        f"drift events {stats.drifts} · model v{model.version if model else 0}",
    ]
    if out is not None:
        parts.append(f"  output: {out}/")
    return "\n".join(parts)


class Progress:
    """A progress bar on stderr, by bytes read; silent when stderr is not a terminal."""

    def __init__(self, total_bytes: int) -> None:
        self.total = max(total_bytes, 1)
        self.done = 0
        self.enabled = sys.stderr.isatty()
        self._last = 0.0
        self._started = time.perf_counter()
        self._messages = 0

    def track(self, messages: Iterable[tuple[int, bytes]]) -> Iterable[tuple[int, bytes]]:
        for number, raw in messages:
            self.done += len(raw) + 1
            self._messages += 1
            yield number, raw

    def update(self) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self._last < 0.2:
            return
        self._last = now
        share = min(self.done / self.total, 1.0)
        bar = "█" * int(share * 30) + "·" * (30 - int(share * 30))
        rate = self._messages / max(now - self._started, 1e-9)
        sys.stderr.write(f"\r{bar} {share:6.1%}  {self._messages:,} messages  {rate:,.0f}/s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            self.done, self._last = self.total, 0.0
            self.update()
            sys.stderr.write("\n")
