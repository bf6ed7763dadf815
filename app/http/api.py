"""The lookup API's rules, apart from the web server: ids, pages, auth, the segment catalog.

Errors are JSON objects ``{"error": code, "message": text}`` with an HTTP status.

>>> check_user_id("u 1\\n")
Traceback (most recent call last):
...
app.http.api.ApiError: (400, 'bad_user_id', 'user ids are 1 to 256 printable characters')
>>> parse_page({"cursor": "42", "limit": "10"})
('42', 10)
>>> authorized("Bearer s3cret", "s3cret"), authorized(None, "s3cret"), authorized(None, "")
(True, False, True)
>>> authorized("Bearer " + chr(0xDCFF), "s3cret"), authorized("Bearer sécret", "sécret")  # a byte not UTF-8; UTF-8
(False, True)
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from app.core.events.decode import MAX_ID_CHARS
from app.core.profiles.profile import RULE_PREFIX
from app.core.segments.model import ModelSnapshot

DEFAULT_PAGE, MAX_PAGE = 100, 1_000
MAX_CURSOR = 2**64 - 1  # Redis's SCAN cursors are unsigned 64-bit numbers


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


def check_user_id(user_id: str) -> str:
    """The id as given, if it can be a user id (the click contract's limits)."""
    if not 1 <= len(user_id) <= MAX_ID_CHARS or not user_id.isprintable():
        raise ApiError(400, "bad_user_id", f"user ids are 1 to {MAX_ID_CHARS} printable characters")
    return user_id


def parse_page(query: Mapping[str, str]) -> tuple[str, int]:
    """``cursor`` (opaque digits, empty for the first page) and ``limit`` (1 to MAX_PAGE).

    >>> parse_page({"limit": "²"})  # a digit to str.isdigit, not to int
    Traceback (most recent call last):
    ...
    app.http.api.ApiError: (400, 'bad_limit', 'limit must be 1 to 1000')
    """
    cursor = query.get("cursor", "")
    if cursor and _whole(cursor, MAX_CURSOR) is None:
        raise ApiError(400, "bad_cursor", "cursor must be a value returned as next_cursor")
    limit = _whole(query.get("limit", str(DEFAULT_PAGE)), MAX_PAGE)
    if not limit:
        raise ApiError(400, "bad_limit", f"limit must be 1 to {MAX_PAGE}")
    return cursor, limit


def _whole(text: str, most: int) -> int | None:
    """``text`` as a whole number from 0 to ``most`` (ASCII digits only), else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(most)):
        return None
    value = int(text)
    return value if value <= most else None


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries the bearer token (always, when there is none)."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    # aiohttp keeps a header's bytes that are not UTF-8 as surrogates: encode them back, never raise (a 500).
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


def segment_catalog(model: ModelSnapshot | None, rules: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every segment a user can be listed under: cluster segments, then rule segments.

    A cluster segment's ``centroid`` is its centre in z-scores against the population,
    by feature: how its users differ from everyone else.
    """
    catalog: list[dict[str, Any]] = []
    if model is not None:
        for segment_id, name, centroid in zip(model.segment_ids, model.names, model.centroids, strict=True):
            catalog.append({
                "id": segment_id, "kind": "cluster", "name": name,
                "centroid": {feature: round(z, 4) for feature, z in zip(model.features, centroid, strict=True)},
            })  # fmt: skip
    for name, rule in rules.items():
        catalog.append({"id": RULE_PREFIX + name, "kind": "rule", "name": name, "rule": rule})
    return catalog
