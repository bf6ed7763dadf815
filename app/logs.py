"""JSON logs (``log_format = "json"``): one object a line, for log shippers.

>>> import logging
>>> record = logging.LogRecord("segstream", logging.INFO, __file__, 1, "model v%d", (3,), None)
>>> record.created = 1_767_225_600.0
>>> JsonFormatter().format(record)
'{"ts":"2026-01-01T00:00:00.000Z","level":"info","logger":"segstream","message":"model v3"}'
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

from app.core.events import format_ts


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message"}``, plus ``exc`` with a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": format_ts(record.created), "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage(),
        }  # fmt: skip
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


class ClientErrorFilter(logging.Filter):
    """aiohttp's "Error handling request" for a malformed request becomes one WARNING line.

    aiohttp logs every request it cannot parse (a request line over 8 KiB, a bad
    method) at ERROR with a traceback: any client could flood the logs with 20 lines a
    request. Those are the client's errors, already answered with 400; errors of a
    handler keep their traceback.

    >>> from aiohttp.http_exceptions import LineTooLong
    >>> try:
    ...     raise LineTooLong(b"x" * 9000, "8190")
    ... except LineTooLong:
    ...     record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
    ...                                ("127.0.0.1",), sys.exc_info())
    >>> ClientErrorFilter().filter(record), record.levelname, record.exc_info
    (True, 'WARNING', None)
    >>> record.getMessage()[:70]
    'bad HTTP request from 127.0.0.1 (400): Got more than 8190 bytes when r'
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = "bad HTTP request from %s (%d): %s", (peer, exc.code, _one_line(exc.message))
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


def _one_line(text: Any, limit: int = 160) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def quiet_client_errors() -> None:
    """Install :class:`ClientErrorFilter` on aiohttp's server logger (the worker's and segstream api's)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientErrorFilter) for f in logger.filters):
        logger.addFilter(ClientErrorFilter())


def json_logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` that writes every record to stderr as JSON."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }
