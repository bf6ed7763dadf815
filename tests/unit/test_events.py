"""The click-event contract: what is accepted, and the reason given for what is not."""

from __future__ import annotations

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.events.decode import (
    KNOWN_TYPES,
    MAX_MESSAGE_BYTES,
    InvalidEvent,
    decode_message,
    decode_slowly,
    format_ts,
    parse_event,
    parse_ts,
)

from tests.event_strategies import FIELD_EDGES, FLOOR, MAY_1997, NOW, VALID, messages


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
        (-1, "on or after 1970-01-01T00:00:00Z"),
        (-0.001, "on or after 1970-01-01T00:00:00Z"),
        ("1969-12-31T23:59:59Z", "on or after 1970-01-01T00:00:00Z"),
        ("1970-01-01T00:59:59+01:00", "on or after 1970-01-01T00:00:00Z"),
    ],
)
def test_bad_timestamps_say_why(ts, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_ts(ts)


def test_every_date_since_1970_is_valid():
    assert parse_ts(0) == parse_ts("1970-01-01T00:00:00Z") == 0.0
    assert parse_ts(12) == 12.0  # seconds: 1970-01-01T00:00:12Z
    assert parse_ts("1997-05-14T09:30:00Z") == parse_ts(863_602_200) == parse_ts(863_602_200_000) == MAY_1997


def test_numbers_below_1e11_are_seconds_and_above_are_milliseconds():
    assert parse_ts(99_999_999_999) == 99_999_999_999.0  # seconds: 5138-11-16
    assert parse_ts(100_000_000_000) == 100_000_000.0  # milliseconds: 1973-03-03T09:46:40Z
    assert format_ts(parse_ts(100_000_000_000)) == "1973-03-03T09:46:40.000Z"


def _forbid_fallback(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the fast path fell back to decode_slowly")

    monkeypatch.setattr("app.core.events.decode.decode_slowly", fail)


@pytest.mark.parametrize("ts", ["1997-05-14T09:30:00Z", "1997-05-14T11:30:00+02:00", 863_602_200, 863_602_200_000])
def test_an_event_from_1997_is_accepted_on_both_paths(ts, monkeypatch):
    raw = orjson.dumps({"user_id": "u1", "type": "purchase", "ts": ts, "value": 30})
    slow = decode_slowly(raw, NOW + 86_400.0)
    _forbid_fallback(monkeypatch)
    fast = decode_message(raw, now=NOW)
    assert [(e.user_id, e.ts, e.value) for e in fast.events] == [("u1", MAY_1997, 30.0)] and fast.rejects == []
    assert [e.to_dict() for e in slow.events] == [e.to_dict() for e in fast.events] and slow.rejects == []


@pytest.mark.parametrize("ts", [-1, -86_400.5, "1969-12-31T23:59:59Z", "1901-01-01T00:00:00+00:00"])
def test_an_event_before_1970_is_rejected_with_its_reason(ts):
    raw = orjson.dumps([{"user_id": "u1", "type": "search", "ts": ts}, {"user_id": "u2", "type": "search", "ts": 0}])
    for decoded in (decode_message(raw, now=NOW), decode_slowly(raw, NOW + 86_400.0)):
        assert [e.user_id for e in decoded.events] == ["u2"]
        assert [(r.index, r.reason) for r in decoded.rejects] == [
            (0, "field 'ts': must be on or after 1970-01-01T00:00:00Z")
        ]


@pytest.mark.parametrize(
    ("ts", "accepted"),
    [
        (FLOOR - 0.001, False), ("2019-12-31T23:59:59Z", False), (MAY_1997, False), (0, False),
        (FLOOR, True), ("2020-01-01T00:00:00Z", True), ("2020-01-01T01:00:00+01:00", True),
        (FLOOR * 1000, True), (FLOOR + 0.001, True), (NOW, True),
    ],
)  # fmt: skip
def test_min_event_time_rejects_what_is_before_it_and_accepts_the_rest(ts, accepted):
    raw = orjson.dumps({"user_id": "u1", "type": "search", "ts": ts})
    fast = decode_message(raw, now=NOW, min_event_time=FLOOR)
    slow = decode_slowly(raw, NOW + 86_400.0, min_event_time=FLOOR)
    for decoded in (fast, slow):
        if accepted:
            assert len(decoded.events) == 1 and decoded.rejects == []
        else:
            assert decoded.events == []
            assert [r.reason for r in decoded.rejects] == ["field 'ts': before min_event_time 2020-01-01T00:00:00Z"]
    assert len(decode_message(raw, now=NOW).events) == 1  # no floor by default


def test_min_event_time_keeps_the_good_neighbours_and_names_a_fractional_floor():
    raw = orjson.dumps([{"user_id": "old", "type": "x", "ts": MAY_1997}, {"user_id": "new", "type": "x", "ts": NOW}])
    decoded = decode_message(raw, now=NOW, min_event_time=MAY_1997 + 0.5)
    assert [e.user_id for e in decoded.events] == ["new"]
    assert [(r.index, r.reason) for r in decoded.rejects] == [
        (0, "field 'ts': before min_event_time 1997-05-14T09:30:00.500000Z")
    ]


def test_min_event_time_does_not_hide_a_negative_epoch():
    decoded = decode_message(b'{"user_id": "u", "type": "x", "ts": -5}', now=NOW, min_event_time=FLOOR)
    assert [r.reason for r in decoded.rejects] == ["field 'ts': must be on or after 1970-01-01T00:00:00Z"]


def test_the_future_bound_is_relative_to_the_callers_now_not_to_the_events():
    raw = orjson.dumps([{"user_id": "u", "type": "x", "ts": MAY_1997}, {"user_id": "u", "type": "x", "ts": NOW}])
    assert len(decode_message(raw, now=NOW).events) == 2  # old history is not "far in the past"
    decoded = decode_message(raw, now=MAY_1997)  # a clock in 1997: 2026 is the far future
    assert [e.ts for e in decoded.events] == [MAY_1997]
    assert [(r.index, r.reason) for r in decoded.rejects] == [
        (1, "field 'ts': 1767225600.000 is too far in the future")
    ]


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
        ({"value": -1}, "field 'value': must be a number between 0 and 1e\\+15"),
        ({"value": 1e308}, "field 'value': must be a number between 0 and 1e\\+15"),
        ({"dwell_ms": 1e16}, "field 'dwell_ms'"),
        ({"traits": {"n": 2**70}}, "field 'traits.n': integers are 64-bit"),
        ({"traits": {"n": -(2**63) - 1}}, "field 'traits.n': integers are 64-bit"),
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


def test_an_empty_array_is_a_dead_letter_not_silence():
    decoded = decode_message(b"[]", now=NOW)
    assert decoded.events == [] and decoded.rejects[0].reason.startswith("empty array")
    assert [r.reason for r in decode_slowly(b"[ ]", NOW).rejects] == [r.reason for r in decoded.rejects]


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
        "user_id": st.text(min_size=1, max_size=20).filter(str.isprintable),  # the contract's ids
        "type": st.sampled_from(sorted(KNOWN_TYPES) + ["custom_thing"]),
        "ts": st.floats(min_value=0, max_value=NOW, allow_nan=False).map(lambda x: round(x, 3)),
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


def _assert_both_decoders_agree(doc, min_event_time: float | None = None) -> None:
    raw = msgspec.json.encode(doc)  # orjson cannot write an integer beyond 64 bits
    fast = decode_message(raw, now=NOW, min_event_time=min_event_time)
    slow = decode_slowly(raw, NOW + 86_400.0, min_event_time=min_event_time)
    assert [e.to_dict() for e in fast.events] == [e.to_dict() for e in slow.events]
    assert [(r.reason, r.index) for r in fast.rejects] == [(r.reason, r.index) for r in slow.rejects]
    assert all(type(e.ts) is float for e in fast.events)


_EDGE_CASES = [(name, value) for name, values in FIELD_EDGES.items() for value in values]
_EDGE_CASES += [(name, value) for name in VALID for value in (None, True, 1, 1.5, "s", [], {})]


@pytest.mark.parametrize(("name", "value"), _EDGE_CASES)
@pytest.mark.parametrize("floor", [None, FLOOR])
def test_fast_decoder_agrees_with_the_validator_at_every_limit(name, value, floor):
    """msgspec checks valid messages in C; parse_event gives the reasons. They must agree."""
    _assert_both_decoders_agree({**VALID, name: value}, floor)
    _assert_both_decoders_agree([VALID, {**VALID, name: value}], floor)


@settings(max_examples=400, deadline=None)
@given(messages, st.one_of(st.none(), st.sampled_from([0.0, MAY_1997, FLOOR, FLOOR + 0.5, NOW])))
def test_fast_decoder_agrees_with_the_validator_on_any_message(doc, floor):
    _assert_both_decoders_agree(doc, floor)


def test_fast_decoder_devices_are_the_contract_devices():
    from typing import get_args

    from app.core.events.decode import DEVICES, ClickEvent

    device_type = ClickEvent.__annotations__["device"]
    assert "Literal" in str(device_type) and all(d in str(device_type) for d in DEVICES)


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
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


@pytest.mark.parametrize("user_id", ["u\x00", "u1\n", "\u202eevil", "\u200b"])
def test_a_user_id_no_lookup_could_name_is_a_dead_letter(user_id):
    """Such ids were stored, but GET /users/{id} answers 400 for them: the contract rejects them now."""
    decoded = decode_message(orjson.dumps({**VALID, "user_id": user_id}), now=NOW)
    assert not decoded.events
    assert decoded.rejects[0].reason == "field 'user_id': must be printable characters (no control or format characters)"
