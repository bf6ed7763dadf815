"""The click-event contract: what is accepted, and the reason given for what is not."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.events import (
    KNOWN_TYPES,
    MAX_MESSAGE_BYTES,
    InvalidEvent,
    decode_message,
    format_ts,
    parse_event,
    parse_ts,
)

NOW = 1_767_225_600.0


def test_timestamps_in_all_three_forms_agree():
    assert parse_ts("2026-01-01T00:00:00Z") == parse_ts(1_767_225_600) == parse_ts(1_767_225_600_000) == NOW
    assert parse_ts("2026-01-01T01:00:00+01:00") == NOW
    assert parse_ts(1_767_225_600.5) == NOW + 0.5


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        ("yesterday", "not an RFC 3339 timestamp"),
        ("2026-01-01T00:00:00", "has no UTC offset"),
        (True, "must be an RFC 3339 string"),
        (None, "must be an RFC 3339 string"),
        (12, "on or after 2000-01-01"),
    ],
)
def test_bad_timestamps_say_why(ts, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_ts(ts)


def test_full_event_is_parsed():
    event = parse_event(
        {
            "user_id": "u1", "type": "purchase", "ts": "2026-01-01T00:00:00Z", "event_id": "e1",
            "session_id": "s1", "value": 12, "device": "mobile", "page": "/p/1", "category": "toys",
            "scroll_depth": 0.5, "dwell_ms": 1200, "traits": {"age": 31}, "consent": True,
        }
    )  # fmt: skip
    assert (event.value, event.device, event.scroll_depth, event.dwell_ms, event.traits) == (
        12.0, "mobile", 0.5, 1200.0, {"age": 31},
    )  # fmt: skip
    assert not event.is_custom


def test_unknown_type_is_accepted_as_custom():
    assert parse_event({"user_id": "u1", "type": "wishlist_add", "ts": NOW}).is_custom


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"user_id": None}, "field 'user_id'"),
        ({"user_id": 7}, "field 'user_id'"),
        ({"type": ""}, "field 'type'"),
        ({"value": -1}, "field 'value': must be a number >= 0"),
        ({"value": "3"}, "field 'value'"),
        ({"scroll_depth": 1.5}, "field 'scroll_depth': must be a number between 0 and 1"),
        ({"dwell_ms": -5}, "field 'dwell_ms'"),
        ({"device": "watch"}, "field 'device'"),
        ({"consent": "yes"}, "field 'consent'"),
        ({"traits": [1]}, "field 'traits': must be an object"),
        ({"traits": {"a": {"b": 1}}}, "field 'traits.a'"),
        ({"value": True}, "field 'value'"),
    ],
)
def test_invalid_fields_are_named(patch, reason):
    doc = {"user_id": "u1", "type": "purchase", "ts": NOW, **patch}
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(doc)


def test_missing_required_field():
    with pytest.raises(InvalidEvent, match="field 'type'"):
        parse_event({"user_id": "u1", "ts": NOW})


def test_message_that_is_not_json_or_not_an_object():
    assert decode_message(b"{oops", now=NOW).rejects[0].reason.startswith("not JSON")
    assert "not an event object or array" in decode_message(b'"hello"', now=NOW).rejects[0].reason
    assert decode_message(None, now=NOW).rejects[0].reason == "empty message (null value)"


def test_oversized_message_is_rejected_whole():
    raw = orjson.dumps({"user_id": "u1", "type": "x", "ts": NOW, "page": "p" * 2000}) * 600
    assert len(raw) > MAX_MESSAGE_BYTES
    decoded = decode_message(raw, now=NOW)
    assert decoded.events == [] and "over the limit" in decoded.rejects[0].reason


def test_array_keeps_good_neighbours_of_a_bad_event():
    raw = orjson.dumps(
        [
            {"user_id": "u1", "type": "search", "ts": NOW},
            {"user_id": "u1", "type": "search"},
            7,
            {"user_id": "u2", "type": "purchase", "ts": NOW, "value": 3},
        ]
    )
    decoded = decode_message(raw, now=NOW)
    assert [e.user_id for e in decoded.events] == ["u1", "u2"]
    assert [(r.index, r.reason) for r in decoded.rejects] == [
        (1, "field 'ts': missing"),
        (2, "array item is a number, not an event object"),
    ]
    assert orjson.loads(decoded.rejects[0].payload) == {"user_id": "u1", "type": "search"}


def test_events_dated_too_far_in_the_future_are_rejected():
    ok = decode_message(orjson.dumps({"user_id": "u", "type": "x", "ts": NOW + 3_600}), now=NOW)
    late = decode_message(orjson.dumps({"user_id": "u", "type": "x", "ts": NOW + 90_000}), now=NOW)
    assert len(ok.events) == 1
    assert "too far in the future" in late.rejects[0].reason


events_strategy = st.fixed_dictionaries(
    {
        "user_id": st.text(min_size=1, max_size=20),
        "type": st.sampled_from(sorted(KNOWN_TYPES) + ["custom_thing"]),
        "ts": st.floats(min_value=946_684_800, max_value=NOW, allow_nan=False).map(lambda x: round(x, 3)),
    },
    optional={
        "value": st.floats(min_value=0, max_value=1e9, allow_nan=False),
        "scroll_depth": st.floats(min_value=0, max_value=1),
        "device": st.sampled_from(["mobile", "desktop", "tablet", "other"]),
        "event_id": st.text(max_size=30),
        "consent": st.booleans(),
        "traits": st.dictionaries(st.text(max_size=10), st.integers(-(2**53), 2**53) | st.text(max_size=10), max_size=5),
    },
)


@given(events_strategy)
def test_valid_events_round_trip_through_json(doc):
    event = parse_event(orjson.loads(orjson.dumps(doc)))
    again = parse_event(orjson.loads(orjson.dumps(event.to_dict())))
    assert again == event


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(raw):
    decoded = decode_message(raw, now=NOW)
    assert len(decoded.events) + len(decoded.rejects) >= 1


def test_format_ts_is_utc_with_milliseconds():
    assert format_ts(NOW) == "2026-01-01T00:00:00.000Z"


# Values of every JSON kind, valid or not for some field, including the edges of each limit.
_texts = st.one_of(
    st.text(max_size=5),
    st.sampled_from(["", "x" * 64, "x" * 65, "é" * 256, "😀" * 257, "x" * 2_048, "x" * 2_049]),
)
_numbers = st.one_of(
    st.integers(min_value=-10, max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 0.5, 1.0000001, -0.0, NOW, NOW * 1000, NOW * 1000 + 0.5, 946_684_799.0]),
)
_scalars = st.one_of(st.none(), st.booleans(), _numbers, _texts, st.sampled_from(["mobile", "tablet", "MOBILE"]))
_traits = st.dictionaries(st.one_of(_texts, st.just("k" * 65)), st.one_of(_scalars, st.lists(st.none(), max_size=1)),
                          max_size=34)  # fmt: skip

def _edges(limit: int) -> list[str]:
    return ["", "x" * limit, "x" * (limit + 1), "😀" * limit, "😀" * (limit + 1)]


_trait_edges = [{f"k{i}": i for i in range(32)}, {f"k{i}": i for i in range(33)}, {"k" * 64: 1}, {"k" * 65: 1},
                {"a": "x" * 256}, {"a": "x" * 257}, {"a": [1]}, {"a": {"b": 1}}, {"a": None}, {}]  # fmt: skip
_field_edges = {
    "user_id": _edges(256), "type": _edges(64), "event_id": _edges(256), "session_id": _edges(256),
    "page": _edges(2_048), "category": _edges(256), "traits": _trait_edges,
    "ts": ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00", "2999-01-01T00:00:00Z", NOW + 86_401, 99_999_999_999],
    "value": [0, -0.0, -1e-300, 1e308], "scroll_depth": [0, 1, 1.0000001, -0.0], "dwell_ms": [0, -1],
}  # fmt: skip
_field_values = {
    name: st.one_of(st.sampled_from(_field_edges.get(name, [None])), _scalars)
    for name in ("user_id", "type", "ts", "event_id", "session_id", "value", "device", "page", "category",
                 "scroll_depth", "dwell_ms", "consent", "traits", "extra")
}  # fmt: skip
_VALID = {"user_id": "u1", "type": "search", "ts": NOW, "event_id": "e1", "session_id": "s1", "value": 2.5,
          "device": "mobile", "page": "/p", "category": "books", "scroll_depth": 0.5, "dwell_ms": 1200,
          "consent": True, "traits": {"age": 30, "country": "FR"}}  # fmt: skip
# A valid event with up to three fields replaced or dropped, or anything at all.
_replaced = st.lists(st.sampled_from(sorted(_field_values)), max_size=3, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({name: _field_values[name] for name in names})
)
_events = st.one_of(
    st.tuples(_replaced, st.lists(st.sampled_from(sorted(_VALID)), max_size=2)).map(
        lambda t: {k: v for k, v in {**_VALID, **t[0]}.items() if k not in t[1]}
    ),
    st.fixed_dictionaries({}, optional=_field_values),
)
_messages = st.one_of(_events, st.lists(st.one_of(_events, _scalars), max_size=4), _scalars)


def _assert_both_decoders_agree(doc) -> None:
    from app.core.events import decode_slowly

    raw = orjson.dumps(doc)
    fast, slow = decode_message(raw, now=NOW), decode_slowly(raw, NOW + 86_400.0)
    assert [e.to_dict() for e in fast.events] == [e.to_dict() for e in slow.events]
    assert [(r.reason, r.index) for r in fast.rejects] == [(r.reason, r.index) for r in slow.rejects]
    assert all(type(e.ts) is float for e in fast.events)


_EDGE_CASES = [(name, value) for name, values in _field_edges.items() for value in values]
_EDGE_CASES += [(name, value) for name in _VALID for value in (None, True, 1, 1.5, "s", [], {})]


@pytest.mark.parametrize(("name", "value"), _EDGE_CASES)
def test_fast_decoder_agrees_with_the_validator_at_every_limit(name, value):
    """msgspec checks valid messages in C; parse_event gives the reasons. They must agree."""
    _assert_both_decoders_agree({**_VALID, name: value})
    _assert_both_decoders_agree([_VALID, {**_VALID, name: value}])


@settings(max_examples=400, deadline=None)
@given(_messages)
def test_fast_decoder_agrees_with_the_validator_on_any_message(doc):
    _assert_both_decoders_agree(doc)


def test_fast_decoder_devices_are_the_contract_devices():
    from typing import get_args

    from app.core.events import DEVICES, ClickEvent

    device_type = ClickEvent.__annotations__["device"]
    assert "Literal" in str(device_type) and all(d in str(device_type) for d in DEVICES)


@given(st.integers(min_value=946_684_800_000, max_value=4_102_444_800_000))
def test_format_ts_agrees_with_datetime_to_the_millisecond(millis):
    from datetime import datetime, timezone

    ts = millis / 1000
    expected = datetime.fromtimestamp(millis // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    assert format_ts(ts) == f"{expected}.{millis % 1000:03d}Z"
    assert abs(parse_ts(format_ts(ts)) - ts) < 0.001


@given(st.floats(min_value=0.0, max_value=4_102_444_800.0))
def test_format_ts_rounds_like_datetime(ts):
    from datetime import datetime, timezone

    expected = datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert format_ts(ts) == expected
