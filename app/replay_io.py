"""Files in and out of the embedded engine: JSON Lines or CSV in, the replay output files out.

Input: each JSON Lines line is one message (an event object or an array of them);
each CSV row is one event whose header names are the contract's field names
(``traits.<name>`` columns fill ``traits``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from app.core.engine.embedded import EmbeddedPipeline, FeedResult
from app.core.events.deadletter import dead_letter

OUTPUT_FILES = (
    "segment_changes.jsonl", "triggers.jsonl", "erasures.jsonl", "drift.jsonl", "dlq.jsonl", "profiles.jsonl",
    "model.json",
)  # fmt: skip
_NUMERIC = frozenset({"value", "scroll_depth", "dwell_ms"})


def read_messages(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw message) pairs; CSV rows are turned into JSON objects."""
    if path.suffix.lower() == ".csv":
        yield from _read_csv(path)
        return
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if line:
                yield number, line


def _read_csv(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            yield reader.line_num, orjson.dumps(csv_event(row))


def csv_event(row: dict[str, str | None]) -> dict[str, Any]:
    """A CSV row as a contract object: empty cells are absent, numbers parsed where the contract wants them.

    >>> csv_event({"user_id": "u1", "type": "purchase", "ts": "1767225600", "value": "12.5", "page": "",
    ...            "traits.age": "31", "consent": "true"})
    {'user_id': 'u1', 'type': 'purchase', 'ts': 1767225600, 'value': 12.5, 'consent': True, 'traits': {'age': 31}}
    """
    event: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    for name, cell in row.items():
        if name is None or cell is None or cell == "":
            continue
        if name.startswith("traits."):
            traits[name[7:]] = _scalar(cell)
        elif name == "ts":
            event[name] = _number(cell) if _looks_numeric(cell) else cell
        elif name in _NUMERIC:
            event[name] = _number(cell) if _looks_numeric(cell) else cell
        elif name == "consent":
            event[name] = {"true": True, "false": False}.get(cell.lower(), cell)
        else:
            event[name] = cell
    if traits:
        event["traits"] = traits
    return event


def _looks_numeric(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _number(cell: str) -> int | float:
    value = float(cell)
    return int(value) if value.is_integer() and "." not in cell and "e" not in cell.lower() else value


def _scalar(cell: str) -> Any:
    if _looks_numeric(cell):
        return _number(cell)
    return {"true": True, "false": False}.get(cell.lower(), cell)


class OutputDir:
    """The replay output files, written as results arrive (profiles and model at the end)."""

    def __init__(self, path: Path, source_name: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.source_name = source_name
        self._changes = (path / "segment_changes.jsonl").open("wb")
        self._drift = (path / "drift.jsonl").open("wb")
        self._dlq = (path / "dlq.jsonl").open("wb")
        self._triggers = (path / "triggers.jsonl").open("wb")
        self._erasures = (path / "erasures.jsonl").open("wb")

    def write(self, result: FeedResult, line_numbers: list[int]) -> None:
        _write_lines(self._changes, result.changes)
        _write_lines(self._triggers, result.triggers)
        _write_lines(self._erasures, result.erasures)
        _write_lines(self._drift, (drift.to_dict() for drift in result.drifts))
        _write_lines(
            self._dlq,
            (
                dead_letter(reject, {"file": self.source_name, "line": line_numbers[position]})
                for reject, position in zip(result.rejects, result.reject_sources, strict=True)
            ),
        )

    def finish(self, pipeline: EmbeddedPipeline) -> None:
        for handle in (self._changes, self._drift, self._dlq, self._triggers, self._erasures):
            handle.close()
        with (self.path / "profiles.jsonl").open("wb") as handle:
            _write_lines(handle, pipeline.profiles())
        model = pipeline.engine.model
        (self.path / "model.json").write_bytes(
            orjson.dumps(model.to_dict() if model else None, option=orjson.OPT_INDENT_2)
        )


def _write_lines(handle: IO[bytes] | io.BufferedWriter, docs: Iterable[dict[str, Any]]) -> None:
    for doc in docs:
        handle.write(orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE))
