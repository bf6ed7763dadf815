"""``segstream api``: serve the lookup API from its own process (see app/http/lookup_server.py)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("api", help="serve the lookup API from Redis, in a process of its own")
    parser.add_argument("--port", type=int, default=None, help="listen port (default: SEGSTREAM_API_PORT, 6067)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from app.http.lookup_server import build_app
    from app.logs import quiet_client_errors
    from app.settings import check_exposure, load_settings

    settings = load_settings()
    check_exposure(settings, "segstream api")
    quiet_client_errors()
    port = args.port or settings.api_port
    web.run_app(build_app(settings), host=settings.web_host, port=port, access_log=None,
                print=lambda _: print(f"segstream api: listening on http://{settings.web_host}:{port}", flush=True))  # fmt: skip
    return 0
