"""The lookup API's answers, whichever server carries them.

Two servers answer the same routes with this class: the worker's Faust web server
(``agents/pages.py``, which can also read the user-state table) and ``segstream api``
(``app/http/lookup_server.py``, a process that only reads Redis and asks a worker on a
miss). A :class:`Reply` is a status, a JSON body and headers.

>>> import asyncio
>>> from app.core.profiles.profile import InMemoryProfileStore
>>> store = InMemoryProfileStore()
>>> _ = store.write_many([{"user_id": "u1", "seq": 1, "segment": "new", "rules": []}])
>>> lookup = Lookup(store, rules={}, token="t")
>>> asyncio.run(lookup.answer("Bearer t", lambda: lookup.profile("u1"))).headers
{'X-Segstream-Source': 'redis'}
>>> asyncio.run(lookup.answer(None, lambda: lookup.profile("u1"))).status
401
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.core.profiles.profile import ProfileStore
from app.core.segments.model import ModelSnapshot
from app.http.api import ApiError, authorized, check_user_id, parse_page, segment_catalog


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] | None = field(default=None)


class Lookup:
    """Profiles and segments from the profile store, with auth and JSON errors."""

    def __init__(
        self,
        store: ProfileStore,
        *,
        rules: Mapping[str, str],
        token: str = "",
        model: Callable[[], Awaitable[ModelSnapshot | None]] | None = None,
        on_store_error: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.token = token
        self._model = model
        self._store_error = on_store_error

    async def answer(self, authorization: str | None, call: Callable[[], Awaitable[Reply | None]]) -> Reply | None:
        """``call()`` if the bearer token is right, with ApiErrors as JSON errors; None passes a miss on."""
        if not authorized(authorization, self.token):
            error = ApiError(401, "unauthorized", "send Authorization: Bearer <SEGSTREAM_API_TOKEN>")
            return Reply(401, error.body(), {"WWW-Authenticate": "Bearer"})
        try:
            return await call()
        except ApiError as error:
            return Reply(error.status, error.body())

    async def profile(self, user_id: str) -> Reply | None:
        """The profile from the store; None on a miss or a store failure (the caller falls back)."""
        check_user_id(user_id)
        try:
            profile = await self.store.get(user_id)
        except Exception:  # down or slow: the caller still has a fallback
            self._store_error()
            return None
        return None if profile is None else Reply(200, profile, {"X-Segstream-Source": "redis"})

    async def segments(self) -> Reply:
        model = await self._model() if self._model else None
        catalog = segment_catalog(model, self.rules)
        try:
            sizes = await self.store.sizes(segment["id"] for segment in catalog)
        except Exception:  # sizes come from the store; without it they are unknown, reported as 0
            self._store_error()
            sizes = {}
        segments = [{**segment, "size": sizes.get(segment["id"], 0)} for segment in catalog]
        selection = model.selection if model is not None else None  # how k and the features were chosen
        return Reply(200, {"model_version": model.version if model else 0, "selection": selection, "segments": segments})

    async def members(self, segment_id: str, query: Mapping[str, str]) -> Reply:
        model = await self._model() if self._model else None
        if segment_id not in {segment["id"] for segment in segment_catalog(model, self.rules)}:
            raise ApiError(404, "not_found", "no such segment; GET /segments lists them")
        cursor, limit = parse_page(query)
        try:
            users, next_cursor = await self.store.members(segment_id, cursor, limit)
        except Exception:
            self._store_error()
            raise ApiError(503, "unavailable", "the profile store (Redis) does not answer") from None
        return Reply(200, {"segment": segment_id, "users": users, "next_cursor": next_cursor or None})
