"""The webhook client against a real HTTP server on 127.0.0.1: closing it does not cut off attempts."""

from __future__ import annotations

import asyncio

from aiohttp import web

from app.core.webhooks import Subscriber
from app.webhooks.delivery import WebhookClient


def test_closing_the_client_lets_attempts_in_flight_finish():
    """A worker stopping closes the client before its agents stop: an attempt under way must still land."""

    async def scenario() -> tuple[str, int]:
        async def slow(request: web.Request) -> web.Response:
            await asyncio.sleep(0.3)
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/", slow)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            client = WebhookClient(timeout_s=2.0)
            subscriber = Subscriber("s", f"http://127.0.0.1:{port}/", "k")
            attempt = asyncio.ensure_future(client.attempt(subscriber, "u1:1", b"{}"))
            await asyncio.sleep(0.05)  # the request is on the wire
            await client.close()
            result = await attempt
            return result.outcome, result.status
        finally:
            await runner.cleanup()

    assert asyncio.run(scenario()) == ("delivered", 200)
