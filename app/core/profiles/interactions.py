"""A user's last few interactions, kept in their state for the profile store.

Each is ``[type, ts, page, value]``: the page cut to ``PAGE_CHARS`` and the value
only for events that carry one, so ten of them stay a few hundred bytes.

>>> from app.core.events.decode import ClickEvent
>>> recent = Interactions()
>>> for second in (3.0, 1.0, 2.0):
...     recent.add(ClickEvent("u1", "page_view", second, page="/home"))
>>> [item["ts"] for item in recent.as_list()]  # newest first, in event time
['1970-01-01T00:00:03.000Z', '1970-01-01T00:00:02.000Z', '1970-01-01T00:00:01.000Z']
"""

from __future__ import annotations

from bisect import insort
from typing import Any

from app.core.events.decode import ClickEvent, format_ts

KEEP = 10
PAGE_CHARS = 64  # as a cart item


class Interactions:
    """The ``KEEP`` latest applied events of one user, oldest first, by event time."""

    __slots__ = ("items",)

    def __init__(self, items: list[list] | None = None) -> None:
        self.items: list[list] = items if items is not None else []

    def add(self, event: ClickEvent) -> None:
        page = event.page[:PAGE_CHARS] if event.page else None
        item = [event.type, event.ts, page, event.value]
        items = self.items
        if not items or event.ts >= items[-1][1]:
            items.append(item)  # the usual case: events arrive in time order
        else:  # a late event: keep event-time order
            insort(items, item, key=_ts)
        if len(items) > KEEP:
            del items[0]

    def as_list(self) -> list[dict[str, Any]]:
        """Newest first, as the profile publishes them."""
        out = []
        for kind, ts, page, value in reversed(self.items):
            item: dict[str, Any] = {"type": kind, "ts": format_ts(ts)}
            if page is not None:
                item["page"] = page
            if value is not None:
                item["value"] = value
            out.append(item)
        return out


def _ts(item: list) -> float:
    return item[1]
