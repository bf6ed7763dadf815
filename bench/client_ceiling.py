"""Child process of ``bench kafka`` (a): the client ceiling.

Raw aiokafka ``getmany`` plus an orjson decode of every message, counting events,
from the beginning of a pre-filled topic with a fresh consumer group. Timed from
the first record received to the last one. Prints one JSON object on stdout.

    python -m bench.client_ceiling --topic T --group G --messages M
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import orjson
from aiokafka import AIOKafkaConsumer


async def consume(bootstrap: str, topic: str, group: str, expected: int, timeout_s: float) -> dict:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    messages = events = 0
    first = last = None
    deadline = time.monotonic() + timeout_s
    loads = orjson.loads
    try:
        while messages < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1_000)
            if not batches:
                continue
            if first is None:
                first, cpu_first = time.perf_counter(), time.process_time()
            for records in batches.values():
                for record in records:
                    value = loads(record.value)
                    events += len(value) if isinstance(value, list) else 1
                messages += len(records)
            last, cpu_last = time.perf_counter(), time.process_time()
    finally:
        await consumer.stop()
    if first is None:
        return {"messages": 0, "events": 0, "seconds": 0.0, "cpu_s": 0.0, "complete": False}
    return {
        "messages": messages, "events": events, "seconds": last - first, "cpu_s": cpu_last - cpu_first,
        "complete": messages >= expected,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--messages", type=int, required=True, help="stop after this many messages")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    result = asyncio.run(consume(args.bootstrap, args.topic, args.group, args.messages, args.timeout))
    print(orjson.dumps(result).decode())
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
