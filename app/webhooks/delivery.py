"""One delivery attempt over HTTP (aiohttp): sign, POST, and say what the response means.

>>> import asyncio
>>> from app.core.webhooks import Subscriber
>>> async def attempt_to_closed_port():
...     async with WebhookClient(timeout_s=1.0) as client:
...         return await client.attempt(Subscriber("x", "http://127.0.0.1:9/", "k"), "u1:1", b"{}")
>>> asyncio.run(attempt_to_closed_port()).outcome
'retry'
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from app.core.webhooks import DELIVERED, Subscriber, classify, headers, retry_after_s


@dataclass(frozen=True)
class Attempt:
    outcome: str  # delivered / retry / fail / disable (app.core.webhooks)
    status: int | None  # None: no response (timeout, connection error)
    detail: str  # for logs and dead letters: "HTTP 503", "timeout after 10.0 s", ...
    retry_after: float | None = None  # seconds the endpoint asked to wait


class WebhookClient:
    """An aiohttp session for deliveries, with one total timeout per attempt."""

    def __init__(self, timeout_s: float, max_connections: int = 64) -> None:
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._in_flight = 0  # attempts started and not ended
        self._idle = asyncio.Event()

    async def __aenter__(self) -> WebhookClient:
        self.open()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    def open(self) -> None:
        """Create the session (in the running event loop), once."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=self.max_connections),
            )

    async def close(self) -> None:
        """Close the session once the attempts in flight have ended (each within the timeout).

        A worker stopping closes it before Faust stops the agents: closing under an
        attempt would cut it off, and an attempt that might have been delivered would
        become a failure.
        """
        if self._in_flight:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=self.timeout_s + 1.0)
            except TimeoutError:
                pass  # an attempt past its own timeout: close anyway
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def attempt(self, subscriber: Subscriber, webhook_id: str, body: bytes) -> Attempt:
        """POST ``body`` once, signed with a fresh timestamp."""
        self._in_flight += 1
        try:
            return await self._post(subscriber, webhook_id, body)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _post(self, subscriber: Subscriber, webhook_id: str, body: bytes) -> Attempt:
        self.open()
        assert self._session is not None
        sent = headers(subscriber.secret, webhook_id, int(time.time()), body)
        try:
            async with self._session.post(subscriber.url, data=body, headers=sent, allow_redirects=False) as response:
                await response.read()  # drain, so the connection is reused
                status = response.status
                wait = retry_after_s(response.headers.get("Retry-After"), time.time())
        except asyncio.TimeoutError:
            return Attempt(classify(None), None, f"timeout after {self.timeout_s} s")
        except aiohttp.ClientError as exc:
            return Attempt(classify(None), None, f"{type(exc).__name__}: {exc}"[:300])
        outcome = classify(status)
        return Attempt(outcome, status, f"HTTP {status}", wait if outcome != DELIVERED else None)
