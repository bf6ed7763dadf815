"""JSON logs (``log_format = "json"``): one object a line, for log shippers.

>>> import logging
>>> record = logging.LogRecord("segstream", logging.INFO, __file__, 1, "model v%d", (3,), None)
>>> record.created = 1_767_225_600.0
>>> JsonFormatter().format(record)
'{"ts":"2026-01-01T00:00:00.000Z","level":"info","logger":"segstream","message":"model v3"}'
"""

from __future__ import annotations

import logging
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


def json_logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` that writes every record to stderr as JSON."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }
