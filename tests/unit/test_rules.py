"""The rule language: parsing, errors that point at the problem, printing, evaluation."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.core.rules.evaluate import compile_rule
from app.core.rules.language import (
    BOOL,
    NUMBER,
    TEXT,
    And,
    Between,
    Compare,
    Count,
    In,
    Literal,
    Name,
    Not,
    Or,
    RuleError,
    Truthy,
    count_key,
    parse,
    to_text,
)

TYPES = {"monetary": NUMBER, "trait.age": NUMBER, "device": TEXT, "weekday": TEXT, "consent": BOOL}
COUNT_TYPES = {count_key(Count("add_to_cart", 1800)): NUMBER, count_key(Count("purchase", 1800)): NUMBER}
ALL_TYPES = {**TYPES, **COUNT_TYPES}


def test_the_issue_examples_parse():
    rule = parse("count(add_to_cart, 30m) >= 1 and count(purchase, 30m) == 0")
    assert rule == And((
        Compare(">=", Count("add_to_cart", 1800), Literal(1.0)),
        Compare("==", Count("purchase", 1800), Literal(0.0)),
    ))  # fmt: skip
    rule = parse("trait.age between 25 and 34 and device == 'mobile' and local_hour between 9 and 17")
    assert isinstance(rule, And) and rule.items[0] == Between(Name("trait.age"), Literal(25.0), Literal(34.0))
    assert parse("weekday not in ('sat', 'sun')") == In(Name("weekday"), (Literal("sat"), Literal("sun")), True)


def test_precedence_is_not_then_and_then_or():
    assert parse("a or b and not c") == Or((Truthy(Name("a")), And((Truthy(Name("b")), Not(Truthy(Name("c")))))))
    assert parse("(a or b) and c") == And((Or((Truthy(Name("a")), Truthy(Name("b")))), Truthy(Name("c"))))


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("monetary >> 3", 10, "expected a value, found '>'"),
        ("monetary > ", 11, "expected a value, found the end"),
        ("(monetary > 3", 13, "expected ')'"),
        ("monetary > 3 frequency", 13, "expected 'and', 'or' or the end"),
        ("count(add_to_cart, 30) > 1", 19, "expected a duration"),
        ("device == 'mobile' $", 19, "unexpected character '$'"),
        ("monetary not > 3", 13, "expected 'between' or 'in' after 'not'"),
    ],
)
def test_syntax_errors_point_at_the_position(text, position, message):
    with pytest.raises(RuleError) as error:
        parse(text, name="vip")
    assert error.value.position == position
    assert message in str(error.value) and "rule 'vip'" in str(error.value)
    assert str(error.value).splitlines()[-1] == "  " + " " * position + "^"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("monetory > 3", "unknown name 'monetory'"),
        ("device > 3", "cannot compare device (text) with 3 (number)"),
        ("device > 'a'", "> compares numbers; device is text"),
        ("monetary > null", "only == and != compare with null"),
    ],
)
def test_type_errors_are_found_at_start_up(text, message):
    with pytest.raises(RuleError, match=re.escape(message)):
        compile_rule(parse(text), ALL_TYPES, name="r")


def columns(**values) -> dict[str, np.ndarray]:
    return {
        name: np.array(v, dtype=float if ALL_TYPES.get(name) == NUMBER else object) for name, v in values.items()
    }


def test_missing_values_make_comparisons_false_except_null_checks():
    data = columns(monetary=[5.0, math.nan], device=["mobile", None])
    check = lambda text: compile_rule(parse(text), ALL_TYPES)(data).tolist()  # noqa: E731
    assert check("monetary > 1") == [True, False]
    assert check("monetary != 1") == [True, False]
    assert check("not monetary > 1") == [False, True]
    assert check("monetary == null") == [False, True]
    assert check("device != 'desktop'") == [True, False]
    assert check("device not in ('desktop')") == [True, False]
    assert check("monetary not between 0 and 1") == [True, False]


# -- properties -----------------------------------------------------------------

_numbers = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda x: round(x, 3))
_texts = st.sampled_from(["mobile", "desktop", "sat", "sun", 'quote"d', "back\\slash", ""])
_literals = st.one_of(_numbers, _texts, st.booleans(), st.none()).map(Literal)
_values = st.one_of(
    _literals,
    st.sampled_from(sorted(TYPES)).map(Name),
    st.sampled_from([Count("add_to_cart", 1800), Count("purchase", 1800)]),
)
_tests = st.one_of(
    st.builds(Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), _values, _values),
    st.builds(Between, _values, _values, _values, st.booleans()),
    st.builds(In, _values, st.lists(_literals, min_size=1, max_size=3).map(tuple), st.booleans()),
    st.builds(Truthy, _values),
)
_rules = st.recursive(
    _tests,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.lists(inner, min_size=2, max_size=3).map(lambda items: And(tuple(items))),
        st.lists(inner, min_size=2, max_size=3).map(lambda items: Or(tuple(items))),
    ),
    max_leaves=8,
)


@given(_rules)
def test_printing_and_parsing_round_trip(rule):
    assert parse(to_text(rule)) == rule
    assert to_text(parse(to_text(rule))) == to_text(rule)


def _row_strategy():
    return st.fixed_dictionaries({
        "monetary": st.one_of(st.just(math.nan), _numbers),
        "trait.age": st.one_of(st.just(math.nan), st.integers(0, 90).map(float)),
        "device": st.one_of(st.none(), _texts),
        "weekday": st.one_of(st.none(), _texts),
        "consent": st.one_of(st.none(), st.booleans()),
        **{key: st.integers(0, 3).map(float) for key in COUNT_TYPES},
    })  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(_rules, st.lists(_row_strategy(), min_size=1, max_size=6))
def test_vectorised_evaluation_agrees_with_a_reference_evaluator(rule, rows):
    try:
        evaluate = compile_rule(rule, ALL_TYPES)
    except RuleError:
        assume(False)  # ill-typed: rejected at start-up, never evaluated
    data = {name: np.array([row[name] for row in rows], dtype=float if kind == NUMBER else object)
            for name, kind in ALL_TYPES.items()}  # fmt: skip
    assert evaluate(data).tolist() == [reference(rule, row) for row in rows]


def reference(node, row) -> bool:
    """The documented semantics, one row at a time, written without numpy."""
    if isinstance(node, And):
        return all(reference(item, row) for item in node.items)
    if isinstance(node, Or):
        return any(reference(item, row) for item in node.items)
    if isinstance(node, Not):
        return not reference(node.item, row)
    if isinstance(node, Truthy):
        return value_of(node.value, row) is True
    if isinstance(node, Compare):
        return compare(node.op, node.left, node.right, row)
    if isinstance(node, Between):
        inside = compare(">=", node.value, node.low, row) and compare("<=", node.value, node.high, row)
        return (not missing(value_of(node.value, row)) and not inside) if node.negated else inside
    if isinstance(node, In):
        found = any(compare("==", node.value, option, row) for option in node.options)
        return (not missing(value_of(node.value, row)) and not found) if node.negated else found
    raise TypeError(node)


def value_of(value, row):
    if isinstance(value, Literal):
        return value.value
    if isinstance(value, Count):
        return row[count_key(value)]
    return row[value.path]


def missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def compare(op, left, right, row) -> bool:
    null = Literal(None)
    if left == null or right == null:  # only == null and != null type-check
        other = value_of(right if left == null else left, row)
        return missing(other) if op == "==" else not missing(other)
    a, b = value_of(left, row), value_of(right, row)
    if missing(a) or missing(b):
        return False
    if isinstance(a, (str, bool)):
        return (a == b) if op == "==" else (a != b)
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
