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
from aiokafka.errors import IllegalGenerationError, KafkaError, RebalanceInProgressError, UnknownMemberIdError

from app.core.events.decode import format_ts


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


class RepeatFilter(logging.Filter):
    """A message logged again within ``window_s`` is counted, not written; the next one says how many.

    During a broker outage aiokafka logs each failed reconnect, every few
    milliseconds per connection: 228,986 ERROR lines in 38 s were measured. One line
    per message template per ``window_s`` keeps what an operator needs to see.

    >>> repeats = RepeatFilter(window_s=5.0)
    >>> def record(at):
    ...     r = logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, "Unable connect to %s", ("node 1",), None)
    ...     r.created = at
    ...     return r
    >>> [repeats.filter(record(at)) for at in (0.0, 0.1, 0.2, 4.9)]
    [True, False, False, False]
    >>> later = record(6.0); repeats.filter(later), later.getMessage()
    (True, 'Unable connect to node 1 (3 more like it in the last 6 s)')
    """

    def __init__(self, window_s: float = 5.0) -> None:
        super().__init__()
        self.window_s = window_s
        self._seen: dict[tuple[str, object], list[float | int]] = {}  # (logger, template) -> [written at, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.msg)
        seen = self._seen.get(key)
        if seen is not None and record.created - seen[0] < self.window_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.getMessage()} ({seen[1]} more like it in the last {record.created - seen[0]:.0f} s)"
            record.args = ()
        self._seen[key] = [record.created, 0]
        return True


# Group errors after which aiokafka rejoins the group by itself: a commit that a rebalance overtook.
_REJOINED = (IllegalGenerationError, UnknownMemberIdError, RebalanceInProgressError)


class RetriedErrorFilter(logging.Filter):
    """An ERROR about a Kafka error that the client itself retries, or rejoins the group after, becomes a WARNING.

    aiokafka logs, for one, "Group Coordinator Request failed" at ERROR and then
    retries; on a freshly started broker that is the normal wait for its offsets
    topic. "OffsetCommit failed ... will rejoin" is a commit a rebalance overtook. An
    ERROR line is for what needs an operator.

    >>> from aiokafka.errors import GroupCoordinatorNotAvailableError
    >>> r = logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, "failed: %s",
    ...                       (GroupCoordinatorNotAvailableError(),), None)
    >>> RetriedErrorFilter().filter(r), r.levelname
    (True, 'WARNING')
    >>> r = logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, "commit failed (%s), will rejoin",
    ...                       (IllegalGenerationError(),), None)
    >>> RetriedErrorFilter().filter(r), r.levelname
    (True, 'WARNING')
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and isinstance(record.args, tuple):
            handled = (arg for arg in record.args if isinstance(arg, KafkaError))
            if any(error.retriable or isinstance(error, _REJOINED) for error in handled):
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def rate_limit_client_logs(prefixes: tuple[str, ...] = ("aiokafka",)) -> None:
    """Install one :class:`RepeatFilter` and one :class:`RetriedErrorFilter` on every logger under ``prefixes``.

    Import those loggers' modules first.
    """
    repeats, retried = RepeatFilter(), RetriedErrorFilter()
    for name in list(logging.Logger.manager.loggerDict):
        if name.split(".")[0] in prefixes:
            logger = logging.getLogger(name)
            if not any(isinstance(f, RepeatFilter) for f in logger.filters):
                logger.addFilter(retried)  # first: the level it leaves is the one repeats are counted at
                logger.addFilter(repeats)


def json_logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` that writes every record to stderr as JSON."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }
