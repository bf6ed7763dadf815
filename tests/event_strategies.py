"""Hypothesis strategies for click messages: every JSON kind, valid or not, and the edges of each limit.

Shared by the decoder's property tests (tests/unit/test_events.py) and the fuzz run on a
real broker (tests/integration/test_fuzz.py).
"""

from __future__ import annotations

from hypothesis import strategies as st

NOW = 1_767_225_600.0
MAY_1997 = 863_602_200.0  # 1997-05-14T09:30:00Z
FLOOR = 1_577_836_800.0  # 2020-01-01T00:00:00Z

# Values of every JSON kind, valid or not for some field, including the edges of each limit.
texts = st.one_of(
    st.text(max_size=5),
    st.sampled_from(["", "x" * 64, "x" * 65, "é" * 256, "😀" * 257, "x" * 2_048, "x" * 2_049]),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 0.5, 1.0000001, -0.0, -1, -1e-9, NOW, NOW * 1000, NOW * 1000 + 0.5, 946_684_799.0,
                     MAY_1997, MAY_1997 * 1000, FLOOR, FLOOR - 0.001, 99_999_999_999, 100_000_000_000]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts, st.sampled_from(["mobile", "tablet", "MOBILE"]))
traits = st.dictionaries(st.one_of(texts, st.just("k" * 65)), st.one_of(scalars, st.lists(st.none(), max_size=1)),
                         max_size=34)  # fmt: skip


def edges(limit: int) -> list[str]:
    return ["", "x" * limit, "x" * (limit + 1), "😀" * limit, "😀" * (limit + 1)]


trait_edges = [{f"k{i}": i for i in range(32)}, {f"k{i}": i for i in range(33)}, {"k" * 64: 1}, {"k" * 65: 1},
               {"a": "x" * 256}, {"a": "x" * 257}, {"a": [1]}, {"a": {"b": 1}}, {"a": None}, {},
               {"a": 2**63 - 1}, {"a": 2**63}, {"a": -(2**63)}, {"a": -(2**63) - 1}, {"a": 2**70},
               {"a": 1e308}, {"a": -1e308}]  # fmt: skip
FIELD_EDGES = {
    "user_id": edges(256) + ["u\x00", "u\n1", "\u202eu1", "u 1", "ü1", "\x7f"], "type": edges(64),
    "event_id": edges(256), "session_id": edges(256),
    "page": edges(2_048), "category": edges(256), "traits": trait_edges,
    "ts": ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00", "2999-01-01T00:00:00Z", NOW + 86_401, 99_999_999_999,
           "1997-05-14T09:30:00Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z", "1900-01-01T00:00:00+00:00",
           "2019-12-31T23:59:59.999+00:00", "2020-01-01T00:00:00Z", 0, -0.0, -1, MAY_1997, MAY_1997 * 1000,
           100_000_000_000, FLOOR, FLOOR - 0.001, FLOOR * 1000],
    "value": [0, -0.0, -1e-300, 1e15, 1.0000000000000002e15, 2**70, 1e308],
    "scroll_depth": [0, 1, 1.0000001, -0.0], "dwell_ms": [0, -1, 1e15, 1e16],
}  # fmt: skip
field_values = {
    name: st.one_of(st.sampled_from(FIELD_EDGES.get(name, [None])), scalars)
    for name in ("user_id", "type", "ts", "event_id", "session_id", "value", "device", "page", "category",
                 "scroll_depth", "dwell_ms", "consent", "traits", "extra")
}  # fmt: skip
VALID = {"user_id": "u1", "type": "search", "ts": NOW, "event_id": "e1", "session_id": "s1", "value": 2.5,
         "device": "mobile", "page": "/p", "category": "books", "scroll_depth": 0.5, "dwell_ms": 1200,
         "consent": True, "traits": {"age": 30, "country": "FR"}}  # fmt: skip
# A valid event with up to three fields replaced or dropped, or anything at all.
replaced = st.lists(st.sampled_from(sorted(field_values)), max_size=3, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({name: field_values[name] for name in names})
)
events = st.one_of(
    st.tuples(replaced, st.lists(st.sampled_from(sorted(VALID)), max_size=2)).map(
        lambda t: {k: v for k, v in {**VALID, **t[0]}.items() if k not in t[1]}
    ),
    st.fixed_dictionaries({}, optional=field_values),
)
messages = st.one_of(events, st.lists(st.one_of(events, scalars), max_size=4), scalars)
