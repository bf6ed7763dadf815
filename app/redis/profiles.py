"""The Redis profile store: one hash per user, one sorted set per segment.

Layout (``prefix`` defaults to ``segstream:``):

- ``{prefix}profile:{user_id}``: hash with ``seq``, ``segs`` (the segment ids the
  profile is listed under, newline-separated) and ``json`` (the profile); expires
  ``ttl_s`` after its last write.
- ``{prefix}model``: the model snapshot the workers predict with (JSON).
- ``{prefix}segment:{id}``: sorted set of user ids, scored by when their profile
  expires. Sizes and pages skip expired users; each write to a segment removes them.

A Lua script writes one profile atomically and refuses it if the stored ``seq``
is newer: writes that arrive out of order never overwrite newer ones. Every call
has a bounded timeout and no hidden retries; the caller decides what to retry.
The script touches keys it computes, so it needs a single Redis, not Redis Cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.core.profiles.profile import segment_ids

_WRITE = """
local stored = redis.call('HGET', KEYS[1], 'seq')
if stored and tonumber(stored) > tonumber(ARGV[1]) then return 0 end
local expires = tonumber(ARGV[5]) + tonumber(ARGV[4])
local wanted = {}
for id in string.gmatch(ARGV[2], '[^\\n]+') do wanted[id] = true end
local before = redis.call('HGET', KEYS[1], 'segs')
if before then
  for id in string.gmatch(before, '[^\\n]+') do
    if not wanted[id] then redis.call('ZREM', ARGV[6] .. id, ARGV[7]) end
  end
end
for id, _ in pairs(wanted) do
  redis.call('ZADD', ARGV[6] .. id, expires, ARGV[7])
  redis.call('ZREMRANGEBYSCORE', ARGV[6] .. id, '-inf', '(' .. ARGV[5])  -- expired users leave as others arrive
end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'segs', ARGV[2], 'json', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# Erasure: the profile, and the user in every segment index (a stale index too, whose
# profile expired: ARGV[2..] are all the segment keys under the prefix).
_ERASE = """
local removed = redis.call('DEL', KEYS[1])
for i = 2, #ARGV do redis.call('ZREM', ARGV[i], ARGV[1]) end
return removed
"""


class RedisProfileStore:
    """:class:`app.core.profiles.profile.ProfileStore` on Redis (tested against a real redis-server)."""

    def __init__(
        self, url: str, *, ttl_s: float, timeout_s: float, prefix: str = "segstream:",
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.url, self.ttl_s, self.timeout_s, self.prefix = url, int(ttl_s), timeout_s, prefix
        self._clock = clock
        # A blocking pool: a burst of lookups waits (up to the timeout) for a connection
        # instead of failing at once when all are busy.
        pool = BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=timeout_s, socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0), health_check_interval=0,
        )  # fmt: skip
        self._redis = Redis(connection_pool=pool)
        self._write = self._redis.register_script(_WRITE)
        self._erase = self._redis.register_script(_ERASE)

    @classmethod
    def from_settings(cls, settings: Any, *, min_timeout_s: float = 0.0) -> RedisProfileStore:
        """The store ``settings`` describe; ``min_timeout_s`` for batch commands that can wait longer."""
        return cls(settings.redis_url, ttl_s=settings.profile_ttl_s, prefix=settings.redis_prefix,
                   timeout_s=max(settings.redis_timeout_s, min_timeout_s))  # fmt: skip

    async def close(self) -> None:
        await self._redis.aclose()

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def write(self, profiles: Sequence[dict[str, Any]]) -> tuple[int, int]:
        if not profiles:
            return 0, 0
        now, segment_prefix = int(self._clock()), f"{self.prefix}segment:"
        async with self._redis.pipeline(transaction=False) as pipe:
            for profile in profiles:
                user_id = profile["user_id"]
                await self._write(
                    keys=[f"{self.prefix}profile:{user_id}"],
                    args=[profile["seq"], "\n".join(segment_ids(profile)), orjson.dumps(profile), self.ttl_s, now,
                          segment_prefix, user_id],
                    client=pipe,
                )  # fmt: skip
            results = await pipe.execute()
        written = sum(1 for result in results if result == 1)
        return written, len(results) - written

    async def get(self, user_id: str) -> dict[str, Any] | None:
        raw = await self._redis.hget(f"{self.prefix}profile:{user_id}", "json")
        return None if raw is None else orjson.loads(raw)

    async def erase(self, user_ids: Sequence[str]) -> int:
        if not user_ids:
            return 0
        segments = [key async for key in self._redis.scan_iter(match=f"{self.prefix}segment:*", count=1000)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                await self._erase(keys=[f"{self.prefix}profile:{user_id}"], args=[user_id, *segments], client=pipe)
            return sum(await pipe.execute())

    async def members(self, segment: str, cursor: str, count: int) -> tuple[list[str], str]:
        # ZSCAN's cursor is Redis's own: stable across pages, a user may rarely repeat.
        now = self._clock()
        next_cursor, pairs = await self._redis.zscan(f"{self.prefix}segment:{segment}", int(cursor or 0), count=count)
        users = [member.decode() for member, expires in pairs if expires > now]
        return users, "" if next_cursor == 0 else str(next_cursor)

    async def sizes(self, segments: Iterable[str]) -> dict[str, int]:
        segments, now = list(segments), self._clock()
        async with self._redis.pipeline(transaction=False) as pipe:
            for segment in segments:
                pipe.zcount(f"{self.prefix}segment:{segment}", f"({now}", "+inf")
            counts = await pipe.execute()
        return dict(zip(segments, counts, strict=True))

    async def put_model(self, model: dict[str, Any]) -> None:
        """The segment model the workers predict with, for ``segstream api``'s ``/segments``."""
        await self._redis.set(f"{self.prefix}model", orjson.dumps(model))

    async def get_model(self) -> dict[str, Any] | None:
        raw = await self._redis.get(f"{self.prefix}model")
        return None if raw is None else orjson.loads(raw)

    async def delete_all(self) -> None:
        """Remove every key under the prefix (tests and rebuilds)."""
        async for key in self._redis.scan_iter(match=f"{self.prefix}*", count=1000):
            await self._redis.delete(key)
