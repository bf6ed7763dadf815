"""``segstream webhooks replay``: re-send the dead letters of ``webhooks-dlq``.

Reads the topic from the start to its current end and sends each record again,
signed anew, with the same ``webhook-id`` (receivers that already have an event
recognise it). ``--subscriber`` keeps one subscriber's records; ``--url`` sends
them to another address with the subscriber's secret (an endpoint that moved).
Each record gets ``webhook_max_attempts`` tries, with the usual backoff capped at 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("webhooks", help="webhook deliveries")
    actions = parser.add_subparsers(dest="action", required=True)
    replay = actions.add_parser("replay", help="re-send the dead letters of webhooks-dlq")
    replay.add_argument("--subscriber", help="only this subscriber's records")
    replay.add_argument("--url", help="send to this URL instead of the subscriber's")
    replay.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from app.settings import load_settings

    settings = load_settings()
    delivered, failed, skipped = asyncio.run(replay(settings, subscriber=args.subscriber, url=args.url))
    print(f"webhooks replay: {delivered:,} delivered, {failed:,} failed again, {skipped:,} skipped "
          f"(other subscriber or not configured)")  # fmt: skip
    return 1 if failed else 0


async def replay(settings, *, subscriber: str | None = None, url: str | None = None) -> tuple[int, int, int]:
    import orjson

    from app.core.webhooks import DELIVERED, RETRY, backoff_s, body_of
    from app.kafka.topic_reader import read_to_end
    from app.webhooks.delivery import WebhookClient

    subscribers = {s.name: s for s in settings.webhooks}
    letters = read_to_end(settings.broker.removeprefix("kafka://"), settings.topic("webhooks-dlq"))
    records = [letter.value async for letter in letters]
    delivered = failed = skipped = 0
    async with WebhookClient(timeout_s=settings.webhook_timeout_s) as client:
        for raw in records:
            record = orjson.loads(raw)
            target = subscribers.get(record["subscriber"])
            if target is None or (subscriber and record["subscriber"] != subscriber):
                skipped += 1
                continue
            if url:
                target = dataclasses.replace(target, url=url)
            for attempt in range(1, settings.webhook_max_attempts + 1):
                result = await client.attempt(target, record["webhook_id"], body_of(record["event"]))
                if result.outcome != RETRY or attempt == settings.webhook_max_attempts:
                    break
                await asyncio.sleep(backoff_s(attempt, settings.webhook_backoff_s, 5.0, result.retry_after))
            if result.outcome == DELIVERED:
                delivered += 1
            else:
                failed += 1
                print(f"  {record['subscriber']} {record['webhook_id']}: {result.detail}")
    return delivered, failed, skipped
