"""Child process of ``bench kafka`` (d): the naive baseline.

What a first Faust segmentation agent looks like: for every event, read the user's
counts from a Faust table, update and write them back (one changelog record per
event), and call River's k-means ``learn_one`` and ``predict_one`` (no scaler: the
cheapest model that learns and predicts, so the baseline is not a straw man). Same
app factory and process tuning as (b) and (c), its own app id and consumer group.
Timed from the first message to the last; the result goes to ``--out`` as JSON,
then the worker stops itself (SIGTERM).

    python -m bench.naive_agent --topic T --app-id A --messages M --out FILE --web-port P --data-dir D
"""

from __future__ import annotations

import argparse
import sys
import time

import faust
import orjson
from river import cluster

from bench.faust_floor import child_parser, finish, serve

KINDS = ("page_view", "product_view", "search", "add_to_cart", "remove_from_cart", "checkout", "purchase")


def build_app(args: argparse.Namespace) -> faust.App:
    from app.cli import tune_garbage_collector
    from app.kafka.faust_app import create_app
    from app.settings import Settings

    tune_garbage_collector()
    app = create_app(Settings(app_id=args.app_id, broker=args.broker, data_dir=args.data_dir, web_port=args.web_port,
                              partitions=args.partitions))  # fmt: skip
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    counts = app.Table("naive_counts", default=None, partitions=args.partitions)
    model = cluster.KMeans(n_clusters=5, seed=1)
    started = time.perf_counter()

    @app.agent(topic, concurrency=1)
    async def segment(stream):
        messages = events = 0
        first = cpu_first = None
        async for event in stream.events():
            if first is None:
                first, cpu_first = time.perf_counter(), time.process_time()
            doc = orjson.loads(event.value)
            for click in doc if isinstance(doc, list) else (doc,):
                user = click["user_id"]
                state = dict(counts.get(user) or {"events": 0, "value": 0.0})
                state["events"] += 1
                state[click["type"]] = state.get(click["type"], 0) + 1
                state["value"] += float(click.get("value") or 0.0)
                counts[user] = state  # one changelog record per event
                x = {kind: state.get(kind, 0) / state["events"] for kind in KINDS}
                x["value"] = state["value"]
                model.learn_one(x)
                model.predict_one(x)
                events += 1
            messages += 1
            if messages >= args.messages:
                finish(args.out, started, first, cpu_first, messages=messages, events=events)

    return app


def main() -> int:
    return serve(build_app(child_parser().parse_args()))


if __name__ == "__main__":
    sys.exit(main())
