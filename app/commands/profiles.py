"""``segstream profiles rebuild | follow``: profiles in Redis from the user-state changelog.

``follow`` runs the profile materialiser (app/redis/materialiser.py) as a process
of its own, for workers started with ``materialise_in_worker = false``; run one or
more, they share the changelog as one consumer group. Each serves ``GET /metrics``
(the ``segstream_profile_*`` and ``segstream_redis_*`` series, as the worker does when
it materialises) and ``GET /healthz`` on ``--port`` (default 6068), on ``web_host``.

``rebuild`` writes every user's profile at once:

The changelog topic holds each user's latest state (the table's source of
truth), so the profile store can always be rebuilt from it: after losing Redis,
after changing ``profile_ttl_s``, or after a long outage. It reads the changelog
from the start to its current end (run it with the workers up or down), and the
latest model from ``segment-model`` for segment names. Writes go through the same
``seq`` check as the workers' writes, so it never overwrites a newer profile.
"""

from __future__ import annotations

import argparse
import asyncio
import time

CHUNK = 1_000
FOLLOW_PORT = 6068  # beside the worker's 6066 and the lookup API's 6067


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("profiles", help="maintain the Redis profile store")
    actions = parser.add_subparsers(dest="action", required=True)
    rebuild = actions.add_parser("rebuild", help="write every user's profile from the user-state changelog")
    rebuild.add_argument("--clear", action="store_true", help="delete every key under SEGSTREAM_REDIS_PREFIX first")
    rebuild.set_defaults(run=run)
    follow = actions.add_parser(
        "follow", help="run the profile materialiser as a process of its own (with materialise_in_worker=false)"
    )
    follow.add_argument("--port", type=int, default=FOLLOW_PORT,
                        help=f"port of its /metrics and /healthz (default {FOLLOW_PORT}; 0: none)")  # fmt: skip
    follow.set_defaults(run=run_follow)


def run(args: argparse.Namespace) -> int:
    from app.settings import load_settings

    settings = load_settings()
    written, refused, users = asyncio.run(rebuild(settings, clear=args.clear))
    print(f"profiles rebuilt: {users:,} users in the changelog, {written:,} written, "
          f"{refused:,} refused (Redis had a newer one)")  # fmt: skip
    return 0


async def rebuild(settings, *, clear: bool = False) -> tuple[int, int, int]:
    """Read the changelog, then write its users' profiles; returns (written, refused, users)."""
    from app.core.profiles.profile import build_profile
    from app.kafka.topic_reader import latest_by_key
    from app.redis.profiles import RedisProfileStore
    from tables.codecs import decode_model, decode_state

    bootstrap = settings.broker.removeprefix("kafka://")
    states = await latest_by_key(bootstrap, settings.state_changelog)
    models = await latest_by_key(bootstrap, settings.topic("segment-model"))
    model = decode_model(models[b"current"]) if models.get(b"current") else None
    store = RedisProfileStore.from_settings(settings, min_timeout_s=5.0)
    written = refused = 0
    try:
        if clear:
            await store.delete_all()
        now, cfg = time.time(), settings.engine.features
        live = [(key, state) for key, raw in states.items()  # None: an erased user
                if raw is not None and not (state := decode_state(raw)).withdrawn]  # fmt: skip
        for start in range(0, len(live), CHUNK):
            profiles = [build_profile(key.decode(), state, model, cfg, updated_at=now)
                        for key, state in live[start : start + CHUNK]]  # fmt: skip
            done, stale = await store.write(profiles)
            written, refused = written + done, refused + stale
    finally:
        await store.close()
    return written, refused, len(live)


def run_follow(args: argparse.Namespace) -> int:
    """Follow the changelog into Redis until SIGTERM or SIGINT; segment names from ``segment-model``."""
    from app.settings import load_settings

    settings = load_settings()
    asyncio.run(follow(settings, port=args.port))
    return 0


async def follow(settings, port: int = FOLLOW_PORT) -> None:
    import signal

    from app import metrics
    from app.kafka.model_feed import CURRENT, ModelFeed
    from app.redis.materialiser import ProfileMaterialiser
    from app.redis.profiles import RedisProfileStore
    from tables.codecs import decode_model

    models = ModelFeed(settings.broker, settings.topic("segment-model"))
    decoded: dict[bytes, object] = {}

    def model():
        raw = models.latest.get(CURRENT)
        if raw is None:
            return None
        if raw not in decoded:  # decoded once per version
            decoded.clear()
            decoded[raw] = decode_model(raw)
        return decoded[raw]

    store = RedisProfileStore.from_settings(settings)
    materialiser = ProfileMaterialiser.from_settings(settings, store, model, observe=metrics.observe_profiles)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await models.start()
    await materialiser.start()
    server = await _serve_metrics(settings.web_host, port) if port else None
    where = f", metrics on http://{settings.web_host}:{port}/metrics" if port else ""
    print(f"segstream profiles follow: {settings.state_changelog} -> {settings.redis_url}{where}", flush=True)
    try:
        await stop.wait()
    finally:
        if server is not None:
            await server.cleanup()
        await materialiser.stop()
        await models.stop()
        await store.close()


async def _serve_metrics(host: str, port: int):
    """``GET /metrics`` and ``GET /healthz`` for the follower; no profile is served here, so no token."""
    from aiohttp import web

    from app import metrics

    async def scrape(request: web.Request) -> web.Response:  # noqa: ARG001 - aiohttp handler signature
        return web.Response(body=metrics.scrape(), content_type=metrics.CONTENT_TYPE)

    async def healthz(request: web.Request) -> web.Response:  # noqa: ARG001
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
