"""``segstream users erase ID…``: erase users from segstream (GDPR/CCPA), through the ``erasures`` topic.

The requests are on the broker when the command returns; the workers carry them out
(agents/erase_users.py). Programs can write the same records themselves: key the
user id, value ``{"user_id": …}``.
"""

from __future__ import annotations

import argparse
import asyncio
import time


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("users", help="act on single users")
    actions = parser.add_subparsers(dest="action", required=True)
    erase = actions.add_parser("erase", help="erase users: state, profiles, pending triggers, learner samples")
    erase.add_argument("user_ids", nargs="+", metavar="ID")
    erase.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from app.settings import load_settings

    settings = load_settings()
    sent = asyncio.run(request_erasure(settings, args.user_ids))
    print(f"users erase: {sent:,} erasure requests on {settings.topic('erasures')}")
    return 0


async def request_erasure(settings, user_ids: list[str]) -> int:
    from aiokafka import AIOKafkaProducer

    from app.core.engine.erasure import erasure_request

    producer = AIOKafkaProducer(bootstrap_servers=settings.broker.removeprefix("kafka://"), acks="all")
    await producer.start()
    try:
        now = time.time()
        sends = [await producer.send(settings.topic("erasures"), erasure_request(user_id, now), key=user_id.encode())
                 for user_id in dict.fromkeys(user_ids)]  # fmt: skip
        for delivered in sends:
            await delivered
    finally:
        await producer.stop()
    return len(sends)
