"""Public purchase data shipped inside PyPI packages, converted to click events at run time.

CDNOW (``lifetimes/datasets/CDNOW_master.txt`` in the ``lifetimes`` wheel): the purchase
history of 23,570 CDNOW customers, January 1997 to June 1998, 69,659 rows of customer id,
date (YYYYMMDD), number of CDs and dollar amount. The file is read from the installed
distribution's files; ``lifetimes`` is never imported. Nothing is written to the repository.

Each row becomes one ``purchase`` event with ``value`` = the amount (the number of CDs has
no field in the click contract and is dropped). Rows have dates only: a customer's rows on
one day get 12:00 UTC plus one minute per earlier row that day. Each customer-day is one
message (a JSON array when it holds more than one row), in date order. There is no truth.

>>> rows = [("00001", "19970101", 1, 11.77), ("00002", "19970112", 1, 12.0), ("00002", "19970112", 5, 77.0)]
>>> [orjson.loads(m) if m[:1] == b"{" else len(orjson.loads(m)) for m in cdnow_messages(rows, shift_years=0)]
[{'user_id': 'cdnow-00001', 'type': 'purchase', 'ts': 852120000.0, 'value': 11.77, 'event_id': 'cdnow-00001:0'}, 2]
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from itertools import groupby
from pathlib import Path

import orjson

from app.core.events.decode import decode_message

__all__ = ["CDNOW_FILE", "MissingDependency", "cdnow_messages", "cdnow_rows", "cdnow_shift_years", "cdnow_path"]

CDNOW_FILE = "lifetimes/datasets/CDNOW_master.txt"
INSTALL_HINT = "pip install -e '.[bench]'   (adds scikit-learn and lifetimes to the venv)"

# TEMPORARY, remove once segstream accepts events of any date since 1970 (issue 11, section 6).
# Until then the decoder rejects events before 2000, so the CDNOW dates are moved forward by a
# whole number of years: 28, which keeps weekdays and leap years (1997 -> 2025, 1998 -> 2026).
# The shift is applied only when a 1997 event is still rejected; the benchmark prints it.
SHIFT_YEARS_WHILE_1997_REJECTED = 28


class MissingDependency(RuntimeError):
    """A benchmark dependency is not installed; the message says how to install it."""


def cdnow_path() -> Path:
    """Where the installed ``lifetimes`` distribution keeps CDNOW_master.txt."""
    try:
        for file in importlib.metadata.files("lifetimes") or ():
            if str(file).replace("\\", "/") == CDNOW_FILE:
                return Path(file.locate())
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec("lifetimes")  # finds the package without importing it
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"
        if path.exists():
            return path
    raise MissingDependency(f"the CDNOW data set ships in the 'lifetimes' package, which is not installed: "
                            f"{INSTALL_HINT}")


def cdnow_rows(path: Path | None = None, customers: int | None = None) -> list[tuple[str, str, int, float]]:
    """(customer id, YYYYMMDD, number of CDs, dollars) per row; only the first ``customers`` ids if given."""
    rows = []
    with open(path or cdnow_path()) as text:
        next(text)  # header
        for line in text:
            customer, day, quantity, amount = line.split()
            if customers is not None and int(customer) > customers:
                continue
            rows.append((customer, day, int(quantity), float(amount)))
    return rows


def cdnow_shift_years() -> int:
    """0 if the decoder accepts a 1997 event, else :data:`SHIFT_YEARS_WHILE_1997_REJECTED`."""
    probe = orjson.dumps({"user_id": "probe", "type": "purchase", "ts": 852_120_000, "value": 1.0})
    accepted = decode_message(probe, now=datetime.now(timezone.utc).timestamp()).events
    return 0 if accepted else SHIFT_YEARS_WHILE_1997_REJECTED


def cdnow_messages(rows: Iterable[tuple[str, str, int, float]], *, shift_years: int) -> Iterator[bytes]:
    """One message per customer-day, in date order (then customer id)."""
    ordered = sorted(rows, key=lambda r: (r[1], r[0]))
    numbers: dict[str, int] = {}  # customer -> rows converted so far: the event ids
    for (customer, day), group in groupby(ordered, key=lambda r: (r[0], r[1])):
        noon = datetime.strptime(day, "%Y%m%d").replace(hour=12, tzinfo=timezone.utc)
        noon = noon.replace(year=noon.year + shift_years)
        user = f"cdnow-{customer}"
        events = []
        for minute, (_, _, _, amount) in enumerate(group):
            number = numbers.get(customer, 0)
            numbers[customer] = number + 1
            events.append({"user_id": user, "type": "purchase", "ts": (noon + timedelta(minutes=minute)).timestamp(),
                           "value": amount, "event_id": f"{user}:{number}"})
        yield orjson.dumps(events[0] if len(events) == 1 else events)
