"""HTTP on Faust's web server (SEGSTREAM_WEB_PORT): the lookup API, /openapi.json, /metrics and /dashboard.

The answers come from :class:`app.http.lookup.Lookup`, shared with ``segstream api``; the
contract is :mod:`app.http.openapi`. A profile comes from Redis; on a miss (or with
Redis down) from the user-state table of the worker that owns the user, which
this worker asks when it is not that worker itself.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson
from faust.exceptions import SameNode

from app import metrics
from app.core.profiles.profile import build_profile
from app.http.api import ApiError
from app.http.dashboard import asset
from app.http.lookup import Lookup, Reply
from app.http.openapi import DOCUMENT
from app.kafka.delivery import guard

if TYPE_CHECKING:
    from agents.worker_app import WorkerApp

_JSON = "application/json"
_OPENAPI = orjson.dumps(DOCUMENT)


def _send(view, reply: Reply):
    return view.bytes(orjson.dumps(reply.body), content_type=_JSON, status=reply.status, headers=reply.headers)


def register(worker: WorkerApp) -> Lookup:
    """Every page on the worker's web server; returns the lookup behind them."""
    app, settings, engine, states, table = worker.app, worker.settings, worker.engine, worker.states, worker.table

    async def current_model():
        return engine.model

    lookup = Lookup(
        worker.profile_store, rules=settings.engine.rules.segments, token=settings.api_token, model=current_model,
        on_store_error=metrics.redis_errors.labels("read").inc,
    )  # fmt: skip

    def profile_of(user_id: str) -> dict[str, Any] | None:
        """The profile of a user this worker owns, from the table; None if it has no state here,
        or they withdrew consent."""
        state = states.get(user_id)
        if state is None or state.withdrawn:
            return None
        return build_profile(user_id, state, engine.model, settings.engine.features, updated_at=time.time())

    @app.page("/users/{user_id}")
    async def get_user(self, request, user_id: str):
        reply = await lookup.answer(request.headers.get("Authorization"), lambda: lookup.profile(user_id))
        if reply is not None:
            return _send(self, reply)
        try:  # a miss: ask the worker that owns the user's partition, unless that is this one
            return await app.router.route_req(table.name, user_id.encode(), self.web, request)
        except SameNode:
            pass
        profile = profile_of(user_id)
        if profile is None:
            return _send(self, Reply(404, ApiError(404, "not_found", "no such user").body()))
        return _send(self, Reply(200, profile, {"X-Segstream-Source": "table"}))

    @app.page("/segments")
    async def list_segments(self, request):
        return _send(self, await lookup.answer(request.headers.get("Authorization"), lookup.segments))

    @app.page("/segments/{segment_id}/users")
    async def list_segment_users(self, request, segment_id: str):
        members = lambda: lookup.members(segment_id, request.query)  # noqa: E731
        return _send(self, await lookup.answer(request.headers.get("Authorization"), members))

    @app.page("/healthz")
    async def healthz(self, request):
        return _send(self, Reply(200, {"status": "ok"}))

    @app.page("/readyz")
    async def readyz(self, request):
        if guard.failure is not None:  # an agent crashed or an output failed: the worker is stopping
            return _send(self, Reply(503, {"status": "failed", "reason": repr(guard.failure)[:200]}))
        ready = states.ready()
        return _send(self, Reply(200 if ready else 503, {"status": "ready" if ready else "recovering"}))

    @app.page("/openapi.json")
    async def openapi(self, request):
        return self.bytes(_OPENAPI, content_type=_JSON)

    @app.page("/metrics")
    async def prometheus_metrics(self, request):
        return self.bytes(metrics.scrape(), content_type=metrics.CONTENT_TYPE)

    @app.page("/dashboard")
    async def dashboard_page(self, request):
        return _send_asset(self, "index.html")

    @app.page("/dashboard/assets/{name}")
    async def dashboard_asset(self, request, name: str):
        return _send_asset(self, name)

    @app.page("/dashboard/data")
    async def dashboard_data(self, request):
        async def document() -> Reply:
            return Reply(200, worker.dashboard.document())

        return _send(self, await lookup.answer(request.headers.get("Authorization"), document))

    return lookup


def _send_asset(view, name: str):
    found = asset(name)
    if found is None:
        return _send(view, Reply(404, ApiError(404, "not_found", "no such dashboard file").body()))
    body, content_type = found
    return view.bytes(body, content_type=content_type)
