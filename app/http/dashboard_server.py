"""The dashboard outside the worker: ``segstream demo`` serves it from a thread with the standard library.

The worker serves the same routes on Faust's web server (agents/pages.py).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

from app.http.api import ApiError
from app.http.dashboard import DashboardFeed, asset

_PREFIX = "/dashboard/assets/"


class DashboardServer:
    """``GET /dashboard``, ``/dashboard/assets/<file>`` and ``/dashboard/data`` on ``host:port``, in a daemon thread.

    A port already in use gives way to a free one: the demo must not fail because a worker runs.
    """

    def __init__(self, feed: DashboardFeed, host: str = "127.0.0.1", port: int = 6066) -> None:
        handler = type("Handler", (_Handler,), {"feed": feed})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError:
            self._server = ThreadingHTTPServer((host, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="dashboard", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/dashboard"

    def start(self) -> DashboardServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    feed: DashboardFeed

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        path = self.path.split("?", 1)[0]
        if path == "/dashboard/data":
            self._reply(200, orjson.dumps(self.feed.document()), "application/json")
            return
        name = "index.html" if path in ("/dashboard", "/dashboard/") else path.removeprefix(_PREFIX)
        found = asset(name) if path.startswith(_PREFIX) or name == "index.html" else None
        if found is None:
            self._reply(404, orjson.dumps(ApiError(404, "not_found", "no such dashboard file").body()), "application/json")
        else:
            self._reply(200, *found)

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet: the demo prints its own output
        pass
