"""``segstream simulate``: persona-driven click traffic to a file or to Kafka.

Writes the stream of :mod:`app.simulator` as JSON Lines (one message a line: an
object for a one-event message, an array otherwise), or produces it to a Kafka topic
keyed by ``user_id``. ``--truth`` writes each user's persona as CSV, the ground truth
the segments can be scored against.

Importing this module does no I/O; the Kafka client is imported only when used.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sys
import time
from collections.abc import Iterator
from typing import IO

from app.simulator import Message, Scenario, assign_personas, generate

__all__ = ["DEFAULT_BROKER", "Pacer", "add_parser", "produce", "run"]

DEFAULT_BROKER = "kafka://127.0.0.1:9092"
# Batches of this size keep the producer at well over 100k messages/s; the broker's
# default message.max.bytes (1 MiB) is the upper bound.
_KAFKA_BATCH_BYTES = 512 * 1024


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``simulate`` subcommand on ``subparsers``."""
    defaults = Scenario()
    parser = subparsers.add_parser(
        "simulate",
        help="generate persona-driven click traffic",
        description="Generate deterministic, persona-driven click traffic as JSON Lines or into Kafka.",
    )
    parser.add_argument("--users", type=int, default=defaults.users, metavar="N", help="number of users")
    parser.add_argument("--events", type=int, default=defaults.events, metavar="M", help="events in total")
    parser.add_argument("--seed", type=int, default=defaults.seed, metavar="S", help="random seed")
    parser.add_argument(
        "--rate", type=float, default=0.0, metavar="R", help="events per second; 0 = as fast as possible"
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--out", metavar="FILE", help="JSON Lines file to write, - for stdout (the default)")
    target.add_argument("--to-kafka", action="store_true", help="produce to --topic on --broker")
    parser.add_argument("--topic", default="clicks", help="Kafka topic (default: clicks)")
    parser.add_argument(
        "--broker",
        default=None,
        help=f"Kafka broker (default: $SEGSTREAM_BROKER or {DEFAULT_BROKER})",
    )
    parser.add_argument("--truth", metavar="FILE", help="write user_id,persona CSV here")
    parser.add_argument(
        "--per-message", type=int, default=1, metavar="K", help="events per message (one user's), default 1"
    )
    parser.add_argument(
        "--shift-at", type=float, default=defaults.shift_at, help="fraction of events before the behaviour shift"
    )
    parser.add_argument(
        "--shift-strength", type=float, default=defaults.shift_strength, help="size of the shift; 0 disables it"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``segstream simulate`` with parsed ``args``; return the exit status."""
    try:
        scenario = Scenario(
            users=args.users,
            events=args.events,
            seed=args.seed,
            shift_at=args.shift_at,
            shift_strength=args.shift_strength,
            events_per_message=args.per_message,
        )
    except ValueError as exc:
        print(f"segstream simulate: {exc}", file=sys.stderr)
        return 2
    pacer = Pacer(args.rate)
    started = time.monotonic()
    try:
        if args.truth:
            _write_truth(args.truth, scenario)
        if args.to_kafka:
            broker = args.broker or os.environ.get("SEGSTREAM_BROKER") or DEFAULT_BROKER
            messages, events = asyncio.run(produce(generate(scenario), broker, args.topic, pacer))
        else:
            messages, events = asyncio.run(_write_lines(generate(scenario), args.out or "-", pacer))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as other command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # a clear one-line error beats a traceback for I/O failures
        print(f"segstream simulate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    seconds = time.monotonic() - started
    print(
        f"segstream simulate: {messages} messages, {events} events in {seconds:.2f} s"
        f" ({events / max(seconds, 1e-9):,.0f} events/s)",
        file=sys.stderr,
    )
    return 0


def _write_truth(path: str, scenario: Scenario) -> None:
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("user_id", "persona"))
        writer.writerows(assign_personas(scenario).items())


class Pacer:
    """Holds a producer to ``rate`` events/s by sleeping; 0 means no pacing.

    Sleeps are short (at most 0.25 s) so the loop stays responsive, and a producer that
    falls more than a second behind restarts its schedule instead of bursting to catch up.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._start = time.monotonic()
        self._done = 0
        # Checking the clock every event would cost more than the pacing is worth.
        self.every = max(1, min(1_000, int(rate / 100))) if rate > 0 else 1 << 62

    async def wait(self, events: int) -> None:
        """Sleep until ``events`` more events are due."""
        self._done += events
        while True:
            ahead = (self._done / self.rate) - (time.monotonic() - self._start)
            if ahead <= 0:
                if ahead < -1.0:
                    self._start, self._done = time.monotonic(), 0
                return
            await asyncio.sleep(min(ahead, 0.25))


async def _write_lines(messages: Iterator[Message], path: str, pacer: Pacer) -> tuple[int, int]:
    """Write one JSON message a line; return (messages, events)."""
    if path == "-":
        return await _write_to(sys.stdout.buffer, messages, pacer)
    with open(path, "wb", buffering=1 << 20) as out:
        return await _write_to(out, messages, pacer)


async def _write_to(out: IO[bytes], messages: Iterator[Message], pacer: Pacer) -> tuple[int, int]:
    n_messages = n_events = pending = 0
    lines: list[bytes] = []
    for message in messages:
        lines.append(message.to_bytes())  # one event: a bare object; several: an array
        n_messages += 1
        n_events += len(message.events)
        pending += len(message.events)
        if pending >= pacer.every or len(lines) >= 4096:
            out.write(b"\n".join(lines) + b"\n")
            lines.clear()
            if pending >= pacer.every:
                out.flush()  # a reader tailing a paced stream sees it as it comes
                await pacer.wait(pending)
                pending = 0
    if lines:
        out.write(b"\n".join(lines) + b"\n")
    out.flush()
    return n_messages, n_events


def _kafka_address(broker: str) -> str:
    """``kafka://host:port[;kafka://host2:port]`` (Faust's form) to aiokafka's ``host:port,...``."""
    hosts = [part.strip() for part in broker.replace(";", ",").split(",") if part.strip()]
    return ",".join(h.split("://", 1)[1] if "://" in h else h for h in hosts)


async def produce(messages: Iterator[Message], broker: str, topic: str, pacer: Pacer) -> tuple[int, int]:
    """Produce every message to ``topic``, keyed by user_id; return (messages, events).

    Messages go into per-partition record batches that are handed to the producer whole:
    awaiting ``send`` for each message would cap the rate far below 100k messages/s.
    Partitions come from the client's default partitioner (murmur2 of the key, as in the
    Java client), so a user's events land where a plain ``send`` would have put them.
    """
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    producer = AIOKafkaProducer(
        bootstrap_servers=_kafka_address(broker),
        linger_ms=5,
        max_batch_size=_KAFKA_BATCH_BYTES,
        acks=1,
    )
    try:
        await producer.start()
        partitions = sorted(await producer.partitions_for(topic))
        partitioner = DefaultPartitioner()
        routes: dict[str, tuple[bytes, int]] = {}  # user_id -> (key bytes, partition)
        batches: dict[int, object] = {}
        deliveries: list[asyncio.Future] = []
        n_messages = n_events = pending = 0

        async def send(partition: int) -> None:
            batch = batches.pop(partition)
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
            if len(deliveries) > 1_000:  # keep only unfinished deliveries; surface failures
                for done in [d for d in deliveries if d.done()]:
                    done.result()
                deliveries[:] = [d for d in deliveries if not d.done()]

        for message in messages:
            route = routes.get(message.key)
            if route is None:
                key = message.key.encode()
                route = routes[message.key] = (key, partitioner(key, partitions, partitions))
            key, partition = route
            value = message.to_bytes()
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                await send(partition)
                batch = batches[partition] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a message of {len(value)} bytes does not fit in a Kafka batch")
            n_messages += 1
            n_events += len(message.events)
            pending += len(message.events)
            if pending >= pacer.every:
                for partition in list(batches):  # paced: deliver what is due now
                    await send(partition)
                await pacer.wait(pending)
                pending = 0
        for partition in list(batches):
            await send(partition)
        await producer.flush()
        for delivery in deliveries:
            await delivery
        return n_messages, n_events
    finally:
        await producer.stop()
