"""HTTP on Faust's web server (SEGSTREAM_WEB_PORT): the lookup API, /openapi.json and /metrics.

The API's rules live in :mod:`app.api` and its contract in :mod:`app.openapi`.
A profile comes from Redis; on a miss (or with Redis down) from the user-state
table of the worker that owns the user, which this worker asks when it is not
that worker itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from faust.exceptions import SameNode
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents.engine import engine
from agents.profiles import profile_of, profile_store
from app import metrics
from app.api import ApiError, authorized, check_user_id, parse_page, segment_catalog
from app.main import app, settings
from app.openapi import DOCUMENT
from tables.user_state import tables_ready, user_to_state

log = logging.getLogger(__name__)
_JSON = "application/json"
_OPENAPI = orjson.dumps(DOCUMENT)


def _reply(view, body, status: int = 200, headers=None):
    return view.bytes(orjson.dumps(body), content_type=_JSON, status=status, headers=headers)


def _api(handler: Callable[..., Awaitable]) -> Callable[..., Awaitable]:
    """Bearer auth and JSON errors around a handler that returns (body, status[, headers])."""

    async def view(self, request, **match):
        if not authorized(request.headers.get("Authorization"), settings.api_token):
            error = ApiError(401, "unauthorized", "send Authorization: Bearer <SEGSTREAM_API_TOKEN>")
            return _reply(self, error.body(), 401, {"WWW-Authenticate": "Bearer"})
        try:
            return await handler(self, request, **match)
        except ApiError as error:
            return _reply(self, error.body(), error.status)

    view.__name__ = handler.__name__
    return view


@app.page("/users/{user_id}")
@_api
async def get_user(self, request, user_id: str):
    check_user_id(user_id)
    try:
        profile = await profile_store.get(user_id)
    except Exception as exc:  # Redis down or slow: the table still answers
        metrics.redis_errors.labels("read").inc()
        log.debug("profile read failed: %s", type(exc).__name__)
        profile = None
    if profile is not None:
        return _reply(self, profile, headers={"X-Segstream-Source": "redis"})
    try:  # ask the worker that owns the user's partition, unless that is this one
        return await app.router.route_req(user_to_state.name, user_id.encode(), self.web, request)
    except SameNode:
        pass
    profile = profile_of(user_id)
    if profile is None:
        raise ApiError(404, "not_found", "no such user")
    return _reply(self, profile, headers={"X-Segstream-Source": "table"})


@app.page("/segments")
@_api
async def list_segments(self, request):
    model = engine.model
    catalog = segment_catalog(model, settings.engine.rules.segments)
    try:
        sizes = await profile_store.sizes(segment["id"] for segment in catalog)
    except Exception:  # sizes come from Redis; without it they are unknown, reported as 0
        metrics.redis_errors.labels("read").inc()
        sizes = {}
    segments = [{**segment, "size": sizes.get(segment["id"], 0)} for segment in catalog]
    return _reply(self, {"model_version": model.version if model else 0, "segments": segments})


@app.page("/segments/{segment_id}/users")
@_api
async def list_segment_users(self, request, segment_id: str):
    known = {segment["id"] for segment in segment_catalog(engine.model, settings.engine.rules.segments)}
    if segment_id not in known:
        raise ApiError(404, "not_found", "no such segment; GET /segments lists them")
    cursor, limit = parse_page(request.query)
    try:
        users, next_cursor = await profile_store.members(segment_id, cursor, limit)
    except Exception:
        metrics.redis_errors.labels("read").inc()
        raise ApiError(503, "unavailable", "the profile store (Redis) does not answer") from None
    return _reply(self, {"segment": segment_id, "users": users, "next_cursor": next_cursor or None})


@app.page("/healthz")
async def healthz(self, request):
    return _reply(self, {"status": "ok"})


@app.page("/readyz")
async def readyz(self, request):
    ready = tables_ready()
    return _reply(self, {"status": "ready" if ready else "recovering"}, 200 if ready else 503)


@app.page("/openapi.json")
async def openapi(self, request):
    return self.bytes(_OPENAPI, content_type=_JSON)


@app.page("/metrics")
async def prometheus_metrics(self, request):
    return self.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])
