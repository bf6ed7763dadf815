"""A real HTTP receiver for webhook tests: checks signatures itself and fails on purpose.

Runs an aiohttp server on 127.0.0.1 in a thread. Each path behaves differently:

- ``/ok``: 200.
- ``/flaky``: for each webhook-id, the first attempt fails (500, 429 with
  ``Retry-After: 1``, or no answer before the client's timeout, in turn); later ones get 200.
- ``/gone``: 410.

Every request is recorded with whether its signature verified, checked here with
hmac directly, not with segstream's own code.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import threading
from dataclasses import dataclass

from aiohttp import web


@dataclass
class Received:
    path: str
    webhook_id: str
    timestamp: str
    signature_ok: bool
    status: int
    body: bytes


class Receiver:
    def __init__(self, secrets: dict[str, bytes], hang_s: float = 3.0) -> None:
        self.secrets = secrets  # path -> signing key bytes
        self.hang_s = hang_s
        self.requests: list[Received] = []
        self._failures = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Receiver:
        started = threading.Event()
        threading.Thread(target=self._serve, args=(started,), daemon=True).start()
        started.wait(10)
        return self

    def __exit__(self, *exc_info) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def ids(self, path: str, status: int | None = None) -> list[str]:
        with self._lock:
            return [r.webhook_id for r in self.requests if r.path == path and (status is None or r.status == status)]

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/{name}", self._handle)
        self._runner = runner = web.AppRunner(app, shutdown_timeout=0.1)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        started.set()
        self._loop.run_forever()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        path = request.path
        webhook_id = request.headers.get("webhook-id", "")
        timestamp = request.headers.get("webhook-timestamp", "")
        key = self.secrets.get(path, b"")
        expected = base64.b64encode(hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest())
        given = [part.split(",", 1)[1].encode() for part in request.headers.get("webhook-signature", "").split()
                 if part.startswith("v1,")]  # fmt: skip
        ok = any(hmac.compare_digest(expected, signature) for signature in given)
        status, extra, hang = 200, {}, False
        if not ok:
            status = 401
        elif path == "/gone":
            status = 410
        elif path == "/flaky" and webhook_id not in self.ids("/flaky"):
            with self._lock:
                self._failures += 1
                turn = self._failures % 3
            status, extra, hang = [(500, {}, False), (429, {"Retry-After": "1"}, False), (200, {}, True)][turn]
        with self._lock:
            self.requests.append(Received(path, webhook_id, timestamp, ok, 0 if hang else status, body))
        if hang:  # the client gives up first: a timeout
            await asyncio.sleep(self.hang_s)
        return web.Response(status=status, headers=extra)
