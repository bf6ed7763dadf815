"""The click-event contract (version 1): decoding and validation.

A Kafka message (or one line of a replay file) holds one JSON event object or a
JSON array of them. Each event is validated on its own, so one bad event in a
collector's batch costs only itself.

>>> batch = decode_message(b'[{"user_id": "u1", "type": "purchase", "ts": 1767225600, "value": 30},'
...                        b' {"user_id": "", "type": "search", "ts": 1767225601}]',
...                        now=1767225700.0)
>>> [(e.user_id, e.type, e.ts, e.value) for e in batch.events]
[('u1', 'purchase', 1767225600.0, 30.0)]
>>> [(r.index, r.reason) for r in batch.rejects]
[(1, "field 'user_id': must be a non-empty string of at most 256 characters")]
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import Meta

CONTRACT_VERSION = 1

KNOWN_TYPES = frozenset(
    {
        "page_view",
        "product_view",
        "search",
        "add_to_cart",
        "remove_from_cart",
        "checkout",
        "purchase",
        "identify",
    }
)
DEVICES = frozenset({"mobile", "desktop", "tablet", "other"})

MAX_MESSAGE_BYTES = 1_048_576
MAX_EVENTS_PER_MESSAGE = 1_000
MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 2_048
MAX_TRAITS = 32
# Amounts (``value``, ``dwell_ms``) up to 10^15: a sum over a billion such events still
# fits a float with room to spare, where two values of 1e308 made ``monetary`` infinite.
MAX_AMOUNT = 1e15
# Integer traits are 64-bit: the state's encoding holds no more (2**70 crashed the encoder).
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
_MAX_FLOAT = sys.float_info.max
# Epoch numbers below this are seconds (up to 5138-11-16), at or above it milliseconds
# (from 1973-03-03T09:46:40Z on): the rule in parse_ts's docstring.
_MS_THRESHOLD = 1e11
# 1970-01-01T00:00:00Z: any date since is history, and valid; a negative epoch is not.
EARLIEST_TS = 0.0
DEFAULT_MAX_FUTURE_S = 86_400.0


class InvalidEvent(ValueError):
    """An event breaks the contract; the message says which field and why."""


_Id = Annotated[str, Meta(max_length=MAX_ID_CHARS)]
_TraitValue = Union[_Id, Annotated[int, Meta(ge=MIN_INT, le=MAX_INT)],
                    Annotated[float, Meta(ge=-_MAX_FLOAT, le=_MAX_FLOAT)], bool, None]  # fmt: skip


class ClickEvent(msgspec.Struct, gc=False):
    """One validated click event. ``ts`` is event time in epoch seconds.

    The annotations are the contract: the fast decoder (:func:`decode_message`)
    checks them in C. ``gc=False``: events hold no cycles, so the cyclic garbage
    collector need not track the millions that pass through a worker.
    """

    user_id: Annotated[str, Meta(min_length=1, max_length=MAX_ID_CHARS)]
    type: Annotated[str, Meta(min_length=1, max_length=64)]
    ts: Union[str, float]  # a str only inside decode_message, which converts it
    event_id: _Id | None = None
    session_id: _Id | None = None
    value: Annotated[float, Meta(ge=0.0, le=MAX_AMOUNT)] | None = None
    device: Literal["mobile", "desktop", "tablet", "other"] | None = None
    page: Annotated[str, Meta(max_length=MAX_TEXT_CHARS)] | None = None
    category: _Id | None = None
    scroll_depth: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    dwell_ms: Annotated[float, Meta(ge=0.0, le=MAX_AMOUNT)] | None = None
    traits: Annotated[dict[Annotated[str, Meta(max_length=64)], _TraitValue], Meta(max_length=MAX_TRAITS)] | None = None
    consent: bool | None = None

    @property
    def is_custom(self) -> bool:
        return self.type not in KNOWN_TYPES

    def to_dict(self) -> dict[str, Any]:
        """The event as a contract object, without the fields it does not carry."""
        return {name: getattr(self, name) for name in self.__struct_fields__ if getattr(self, name) is not None}


# A message: one event object or an array of them, checked against the contract in C.
_FAST_DECODER = msgspec.json.Decoder(
    Union[Annotated[list[ClickEvent], Meta(max_length=MAX_EVENTS_PER_MESSAGE)], ClickEvent]
)
_ANY_JSON = msgspec.json.Decoder()  # the slow path's parser: any JSON, integers exact
_EMPTY_ARRAY = f"empty array: a message holds 1 to {MAX_EVENTS_PER_MESSAGE} events"


@dataclass(slots=True)
class Reject:
    """An input that failed validation, with enough context to find and replay it."""

    reason: str
    payload: bytes
    index: int | None = None  # position in a JSON array, None for the whole message


@dataclass(slots=True)
class DecodedMessage:
    events: list[ClickEvent] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def decode_message(
    raw: bytes,
    *,
    now: float,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_future_s: float = DEFAULT_MAX_FUTURE_S,
    min_event_time: float | None = None,
) -> DecodedMessage:
    """Decode one message into valid events and rejects; never raises on bad input.

    ``now`` is the caller's clock (epoch seconds): events dated more than
    ``max_future_s`` after it are rejected as absurd. Events of any date since
    1970 are valid; ``min_event_time`` (epoch seconds, the ``min_event_time``
    setting) is an optional floor, and events before it are rejected.

    A valid message is decoded and checked in C by msgspec. A message that fails
    is decoded again by :func:`parse_event`, which says which event and field is
    wrong and keeps the valid events of a batch; both accept exactly the same
    input (a property test checks it).
    """
    if raw is None:
        return DecodedMessage(rejects=[Reject("empty message (null value)", b"")])
    if len(raw) > max_bytes:
        return DecodedMessage(rejects=[Reject(f"message is {len(raw)} bytes, over the limit of {max_bytes}", raw)])
    latest = now + max_future_s
    earliest = EARLIEST_TS if min_event_time is None else min_event_time
    try:
        doc = _FAST_DECODER.decode(raw)
    except msgspec.DecodeError:
        return decode_slowly(raw, latest, min_event_time=min_event_time)
    events = doc if type(doc) is list else [doc]
    if not events:
        return DecodedMessage(rejects=[Reject(_EMPTY_ARRAY, raw)])
    for event in events:
        try:
            ts = parse_ts(event.ts)
        except InvalidEvent:
            return decode_slowly(raw, latest, min_event_time=min_event_time)
        if ts > latest or ts < earliest or not event.user_id.isprintable():
            return decode_slowly(raw, latest, min_event_time=min_event_time)
        event.ts = ts
    return DecodedMessage(events)


def decode_slowly(raw: bytes, latest_ts: float, *, min_event_time: float | None = None) -> DecodedMessage:
    """Decode with :func:`parse_event`, event by event, giving every reject its reason."""
    out = DecodedMessage()
    try:
        doc = _ANY_JSON.decode(raw)  # msgspec, not orjson: orjson reads 2**70 as a float
    except msgspec.DecodeError as exc:
        out.rejects.append(Reject(f"not JSON: {exc}", raw))
        return out
    if isinstance(doc, dict):
        try:
            out.events.append(parse_event(doc, latest_ts=latest_ts, min_event_time=min_event_time))
        except InvalidEvent as exc:
            out.rejects.append(Reject(str(exc), raw))
    elif isinstance(doc, list):
        if not doc:
            out.rejects.append(Reject(_EMPTY_ARRAY, raw))
        if len(doc) > MAX_EVENTS_PER_MESSAGE:
            out.rejects.append(
                Reject(f"array holds {len(doc)} events, over the limit of {MAX_EVENTS_PER_MESSAGE}", raw)
            )
            return out
        for index, item in enumerate(doc):
            try:
                if not isinstance(item, dict):
                    raise InvalidEvent(f"array item is {_json_kind(item)}, not an event object")
                out.events.append(parse_event(item, latest_ts=latest_ts, min_event_time=min_event_time))
            except InvalidEvent as exc:
                out.rejects.append(Reject(str(exc), msgspec.json.encode(item), index))  # exact integers too
    else:
        out.rejects.append(Reject(f"message is {_json_kind(doc)}, not an event object or array", raw))
    return out


def parse_event(
    doc: dict[str, Any], *, latest_ts: float = math.inf, min_event_time: float | None = None
) -> ClickEvent:
    """Validate one decoded JSON object against the contract.

    ``ts`` must be at most ``latest_ts`` and, when ``min_event_time`` is given
    (epoch seconds), at least that.

    >>> parse_event({"user_id": "u1", "type": "page_view", "ts": "2026-01-01T00:00:00Z"}).ts
    1767225600.0
    >>> parse_event({"user_id": "u1", "type": "page_view", "ts": 1767225600000}).ts
    1767225600.0
    >>> parse_event({"user_id": "u1", "type": "purchase", "ts": "1997-05-14T09:30:00Z"}).ts
    863602200.0
    >>> parse_event({"user_id": "u1", "type": "purchase", "ts": "2019-12-31T23:59:59Z"}, min_event_time=1577836800)
    Traceback (most recent call last):
    ...
    app.core.events.decode.InvalidEvent: field 'ts': before min_event_time 2020-01-01T00:00:00Z
    >>> parse_event({"user_id": "u1", "type": "page_view"})
    Traceback (most recent call last):
    ...
    app.core.events.decode.InvalidEvent: field 'ts': missing
    """
    user_id = doc.get("user_id")
    if type(user_id) is not str or not user_id or len(user_id) > MAX_ID_CHARS:
        raise InvalidEvent(f"field 'user_id': must be a non-empty string of at most {MAX_ID_CHARS} characters")
    if not user_id.isprintable():  # NUL, line breaks, bidirectional overrides: no lookup could name it
        raise InvalidEvent("field 'user_id': must be printable characters (no control or format characters)")
    kind = doc.get("type")
    if type(kind) is not str or not kind or len(kind) > 64:
        raise InvalidEvent("field 'type': must be a non-empty string of at most 64 characters")
    if "ts" not in doc:
        raise InvalidEvent("field 'ts': missing")
    ts = parse_ts(doc["ts"])
    if min_event_time is not None and ts < min_event_time:
        raise InvalidEvent(f"field 'ts': before min_event_time {_rfc3339(min_event_time)}")
    if ts > latest_ts:
        raise InvalidEvent(f"field 'ts': {ts:.3f} is too far in the future")
    if len(doc) == 3:
        return ClickEvent(user_id, kind, ts)
    # Optional fields, checked inline: this runs once per event on the hot path.
    get = doc.get
    event_id, session_id, page, category = get("event_id"), get("session_id"), get("page"), get("category")
    if event_id is not None and (type(event_id) is not str or len(event_id) > MAX_ID_CHARS):
        raise _bad_text("event_id", MAX_ID_CHARS)
    if session_id is not None and (type(session_id) is not str or len(session_id) > MAX_ID_CHARS):
        raise _bad_text("session_id", MAX_ID_CHARS)
    if page is not None and (type(page) is not str or len(page) > MAX_TEXT_CHARS):
        raise _bad_text("page", MAX_TEXT_CHARS)
    if category is not None and (type(category) is not str or len(category) > MAX_ID_CHARS):
        raise _bad_text("category", MAX_ID_CHARS)
    value, scroll_depth, dwell_ms = get("value"), get("scroll_depth"), get("dwell_ms")
    if value is not None:
        if type(value) not in _NUMBERS or not 0.0 <= value <= MAX_AMOUNT:
            raise _bad_number("value", value, 0.0, MAX_AMOUNT)
        value = float(value)
    if scroll_depth is not None:
        if type(scroll_depth) not in _NUMBERS or not 0.0 <= scroll_depth <= 1.0:
            raise _bad_number("scroll_depth", scroll_depth, 0.0, 1.0)
        scroll_depth = float(scroll_depth)
    if dwell_ms is not None:
        if type(dwell_ms) not in _NUMBERS or not 0.0 <= dwell_ms <= MAX_AMOUNT:
            raise _bad_number("dwell_ms", dwell_ms, 0.0, MAX_AMOUNT)
        dwell_ms = float(dwell_ms)
    device = get("device")
    if device is not None and (type(device) is not str or device not in DEVICES):
        raise InvalidEvent(f"field 'device': must be one of {sorted(DEVICES)}")
    consent = get("consent")
    if consent is not None and type(consent) is not bool:
        raise InvalidEvent("field 'consent': must be true or false")
    traits = get("traits")
    if traits is not None:
        _check_traits(traits)
    return ClickEvent(
        user_id, kind, ts, event_id, session_id, value, device, page, category, scroll_depth, dwell_ms, traits, consent
    )


_NUMBERS = (int, float)  # bool is a subclass of int, but type() keeps it out


def parse_ts(raw: Any) -> float:
    """Event time in epoch seconds from RFC 3339, epoch seconds or epoch milliseconds.

    Any time from 1970-01-01T00:00:00Z on is valid; earlier ones (negative epochs)
    are rejected. A number is read by one rule, with no guessing per event:

    - below 1e11 it is epoch seconds: 1970-01-01 up to 5138-11-16;
    - at or above 1e11 it is epoch milliseconds: 1973-03-03T09:46:40Z onwards.

    So seconds work for every date since 1970, and milliseconds for every date
    from 1973-03-03T09:46:40Z on. A millisecond epoch of an earlier date is below
    1e11 and is read, by that rule, as seconds: a date between 1970 and 5138,
    which the bound on future timestamps rejects, except for milliseconds below
    the current epoch in seconds (about 1.8e9 now: the first three weeks of 1970),
    which are misread as a past date. Producers with event times before
    1973-03-03 send RFC 3339 or epoch seconds.

    >>> parse_ts("1997-05-14T09:30:00+00:00"), parse_ts(863602200), parse_ts(863602200000)
    (863602200.0, 863602200.0, 863602200.0)
    >>> parse_ts(0), parse_ts(99_999_999_999), parse_ts(100_000_000_000)
    (0.0, 99999999999.0, 100000000.0)
    >>> parse_ts("1969-12-31T23:59:59Z")
    Traceback (most recent call last):
    ...
    app.core.events.decode.InvalidEvent: field 'ts': must be on or after 1970-01-01T00:00:00Z
    """
    if type(raw) is str:
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise InvalidEvent(f"field 'ts': {raw[:40]!r} is not an RFC 3339 timestamp") from None
        if parsed.tzinfo is None:
            raise InvalidEvent(f"field 'ts': {raw[:40]!r} has no UTC offset")
        ts = parsed.timestamp()
    elif type(raw) in _NUMBERS:
        ts = raw / 1000.0 if raw >= _MS_THRESHOLD else float(raw)
    else:
        raise InvalidEvent("field 'ts': must be an RFC 3339 string or epoch seconds or milliseconds")
    if not math.isfinite(ts) or ts < EARLIEST_TS:
        raise InvalidEvent("field 'ts': must be on or after 1970-01-01T00:00:00Z")
    return ts


def parse_min_event_time(raw: Any) -> float:
    """The ``min_event_time`` setting in epoch seconds, from RFC 3339 or epoch seconds.

    Raises ``ValueError`` saying what is wrong. Numbers are always seconds here: one
    of 1e11 or more (the year 5138) is refused as probably milliseconds.

    >>> [parse_min_event_time(raw) for raw in ("2020-01-01T00:00:00Z", 1577836800, "1577836800")]
    [1577836800.0, 1577836800.0, 1577836800.0]
    >>> parse_min_event_time("2020-01-01")
    Traceback (most recent call last):
    ...
    ValueError: '2020-01-01' has no UTC offset; want an RFC 3339 timestamp such as 2020-01-01T00:00:00Z or epoch seconds
    """
    hint = "want an RFC 3339 timestamp such as 2020-01-01T00:00:00Z or epoch seconds"
    if isinstance(raw, datetime):  # a TOML offset date-time arrives parsed
        parsed = raw
    elif type(raw) is str:  # from the environment, or quoted in TOML
        try:
            number = float(raw)
        except ValueError:
            number = None
        if number is not None:
            return _floor_seconds(number, raw)
        try:
            parsed = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise ValueError(f"{raw[:40]!r} is not a timestamp; {hint}") from None
    elif type(raw) in _NUMBERS:
        return _floor_seconds(float(raw), raw)
    else:
        raise ValueError(f"{raw!r:.40} is not a timestamp; {hint}")
    if parsed.tzinfo is None:
        raise ValueError(f"{str(raw)[:40]!r} has no UTC offset; {hint}")
    return _floor_seconds(parsed.timestamp(), raw)


def _floor_seconds(ts: float, raw: Any) -> float:
    if not math.isfinite(ts) or ts < EARLIEST_TS:
        raise ValueError(f"{str(raw)[:40]!r} is not on or after 1970-01-01T00:00:00Z")
    if ts >= _MS_THRESHOLD:
        raise ValueError(f"{str(raw)[:40]!r} is after the year 5138: epoch milliseconds? give epoch seconds")
    return ts


def _rfc3339(ts: float) -> str:
    """``2020-01-01T00:00:00Z``: as a setting is written, with a fraction only if it has one."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def _bad_text(name: str, limit: int) -> InvalidEvent:
    return InvalidEvent(f"field '{name}': must be a string of at most {limit} characters")


def _bad_number(name: str, raw: Any, low: float, high: float) -> InvalidEvent:
    bounds = f">= {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
    return InvalidEvent(f"field '{name}': must be a number {bounds}, got {raw!r:.40}")


def _check_traits(raw: Any) -> None:
    if type(raw) is not dict:
        raise InvalidEvent("field 'traits': must be an object")
    if len(raw) > MAX_TRAITS:
        raise InvalidEvent(f"field 'traits': at most {MAX_TRAITS} traits")
    for key, value in raw.items():
        if len(key) > 64:
            raise InvalidEvent("field 'traits': names are at most 64 characters")
        if value is not None and type(value) not in (str, int, float, bool):
            raise InvalidEvent(f"field 'traits.{key}': must be a string, number, boolean or null")
        if type(value) is str and len(value) > MAX_ID_CHARS:
            raise InvalidEvent(f"field 'traits.{key}': at most {MAX_ID_CHARS} characters")
        if type(value) is int and not MIN_INT <= value <= MAX_INT:
            raise InvalidEvent(f"field 'traits.{key}': integers are 64-bit (at most {MAX_INT})")


def _json_kind(value: Any) -> str:
    return {str: "a string", int: "a number", float: "a number", bool: "a boolean", list: "an array"}.get(
        type(value), "null"
    )


def format_ts(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC with milliseconds, the form every output uses.

    >>> format_ts(1767225600.25)
    '2026-01-01T00:00:00.250Z'
    """
    # Every change, trigger and profile interaction carries one, so it is built from a
    # cached date plus arithmetic (UTC has no leap seconds in Unix time). The fraction is rounded to microseconds first, as
    # datetime.fromtimestamp does, so both agree to the last digit (a test checks).
    fraction, whole = math.modf(ts)
    micros = round(fraction * 1e6)
    if micros < 0:  # before 1970: modf keeps the sign
        whole, micros = whole - 1, micros + 1_000_000
    elif micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    day, second = divmod(int(whole), 86_400)
    hour, second = divmod(second, 3_600)
    minute, second = divmod(second, 60)
    return f"{_utc_day(day)}T{hour:02d}:{minute:02d}:{second:02d}.{micros // 1000:03d}Z"


@lru_cache(maxsize=1024)
def _utc_day(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, timezone.utc).strftime("%Y-%m-%d")
