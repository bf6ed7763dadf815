"""``segstream api``: the lookup API in a process of its own, reading Redis only.

The worker's web server answers the same routes, but it shares one event loop with
the clicks: while they flow, lookups wait behind click batches (``python -m bench
api``). This server does nothing else, so its latency does not depend on the
stream, and as many copies as needed can run. On a Redis miss it asks a worker
(``worker_url``), which reads the user-state table.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import yarl
from aiohttp import web

from app import metrics
from app.core.segments.model import ModelSnapshot
from app.http.api import ApiError
from app.http.lookup import Lookup, Reply
from app.http.openapi import DOCUMENT
from app.redis.profiles import RedisProfileStore

MODEL_TTL_S = 1.0  # how long the model read from Redis is reused


def build_app(settings: Any) -> web.Application:
    """The aiohttp application for ``settings`` (clients open on start-up, close on clean-up)."""
    store = RedisProfileStore.from_settings(settings)
    worker_url = (settings.worker_url or f"http://127.0.0.1:{settings.web_port}").rstrip("/")
    model_cache: list[Any] = [0.0, None]  # read at, snapshot

    async def current_model() -> ModelSnapshot | None:
        if time.monotonic() - model_cache[0] > MODEL_TTL_S:
            doc = await store.get_model()
            model_cache[:] = [time.monotonic(), ModelSnapshot.from_dict(doc) if doc else None]
        return model_cache[1]

    lookup = Lookup(store, rules=settings.engine.rules.segments, token=settings.api_token, model=current_model,
                    on_store_error=metrics.redis_errors.labels("read").inc)  # fmt: skip
    session: list[aiohttp.ClientSession] = []

    async def from_worker(user_id: str, authorization: str | None) -> Reply:
        headers = {"Authorization": authorization} if authorization else {}
        try:
            async with session[0].get(worker_user_url(worker_url, user_id), headers=headers) as response:
                body = orjson.loads(await response.read())
                source = response.headers.get("X-Segstream-Source")  # the worker's: redis or table
                return Reply(response.status, body, {"X-Segstream-Source": f"worker:{source}"} if source else None)
        except (aiohttp.ClientError, asyncio.TimeoutError, orjson.JSONDecodeError):
            error = ApiError(503, "unavailable", "not in Redis, and no worker answers at worker_url")
            return Reply(503, error.body())

    async def users(request: web.Request) -> web.Response:
        user_id = request.match_info["user_id"]
        authorization = request.headers.get("Authorization")
        reply = await lookup.answer(authorization, lambda: lookup.profile(user_id))
        return _send(reply if reply is not None else await from_worker(user_id, authorization))

    async def segments(request: web.Request) -> web.Response:
        return _send(await lookup.answer(request.headers.get("Authorization"), lookup.segments))

    async def members(request: web.Request) -> web.Response:
        segment_id = request.match_info["segment_id"]
        call = lambda: lookup.members(segment_id, request.query)  # noqa: E731
        return _send(await lookup.answer(request.headers.get("Authorization"), call))

    async def healthz(request: web.Request) -> web.Response:
        return _send(Reply(200, {"status": "ok"}))

    async def readyz(request: web.Request) -> web.Response:
        try:
            ready = await store.ping()
        except Exception:
            ready = False
        return _send(Reply(200 if ready else 503, {"status": "ready" if ready else "recovering"}))

    openapi_body = orjson.dumps(DOCUMENT)

    async def prometheus(request: web.Request) -> web.Response:
        # This process's own: segstream_redis_errors_total{op="read"} counts its failed reads.
        return web.Response(body=metrics.scrape(), content_type=metrics.CONTENT_TYPE)

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=openapi_body, content_type="application/json")

    async def lifetime(app: web.Application):
        timeout = aiohttp.ClientTimeout(total=max(1.0, 4 * settings.redis_timeout_s))
        session.append(aiohttp.ClientSession(timeout=timeout))
        yield
        await session[0].close()
        await store.close()

    app = web.Application()
    app.cleanup_ctx.append(lifetime)
    app.router.add_get("/users/{user_id}", users)
    app.router.add_get("/segments", segments)
    app.router.add_get("/segments/{segment_id}/users", members)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", prometheus)
    return app


def worker_user_url(worker_url: str, user_id: str) -> yarl.URL:
    """The worker's ``/users/{id}`` for any id, dots included.

    A URL given as text is normalised by the client: ``/users/..`` became the worker's
    root, whose answer was passed on as the profile of user "..". Every character but
    letters, digits and ``_-~`` is escaped, dots too, and the URL is sent as written.

    >>> str(worker_user_url("http://127.0.0.1:6066", "..")), str(worker_user_url("http://w", "a/b ü"))
    ('http://127.0.0.1:6066/users/%2E%2E', 'http://w/users/a%2Fb%20%C3%BC')
    """
    return yarl.URL(f"{worker_url}/users/{quote(user_id, safe='').replace('.', '%2E')}", encoded=True)


def _send(reply: Reply) -> web.Response:
    return web.Response(body=orjson.dumps(reply.body), status=reply.status, headers=reply.headers,
                        content_type="application/json")  # fmt: skip
