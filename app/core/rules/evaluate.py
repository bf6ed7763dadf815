"""Vectorised evaluation of parsed rules (:mod:`app.core.rules.language`) over a batch.

:func:`compile_rule` turns a rule into a function of a batch of columns (one numpy
array per name) that returns one bool per row. Numbers are float arrays with NaN
for missing; text and booleans are object arrays with None for missing.

>>> import numpy as np
>>> from app.core.rules.language import parse
>>> evaluate = compile_rule(parse("monetary > 100 and device == 'mobile'"), {"monetary": "number", "device": "text"})
>>> evaluate({"monetary": np.array([150.0, 150.0, np.nan]),
...           "device": np.array(["mobile", "desktop", "mobile"], dtype=object)}).tolist()
[True, False, False]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import reduce
from typing import Any

import numpy as np

from app.core.rules.language import (
    BOOL, NUMBER, TEXT, And, Between, Compare, Count, In, Literal, Name, Node, Not, Or, RuleError, Truthy, Value,
    count_key, to_text,
)  # fmt: skip

Columns = Mapping[str, np.ndarray]  # name (or count key) -> one value per row
Evaluator = Callable[[Columns], np.ndarray]


def compile_rule(node: Node, types: Mapping[str, str], *, name: str | None = None, text: str = "") -> Evaluator:
    """A vectorised evaluator of ``node``; ``types`` gives each known name's type.

    Numbers are float arrays with NaN for missing; text and booleans are object
    arrays with None for missing. Unknown names and comparisons that cannot be
    true by type (``device > 3``) are errors here, not silent falses later.
    """
    evaluate = _Compiler(types, name, text).node(node)

    def rows(columns: Columns) -> np.ndarray:
        size = len(next(iter(columns.values()))) if columns else 0
        return np.broadcast_to(np.asarray(evaluate(columns), dtype=bool), (size,))

    return rows


class _Compiler:
    def __init__(self, types: Mapping[str, str], name: str | None, text: str) -> None:
        self.types, self.name, self.text = types, name, text

    def error(self, message: str) -> RuleError:
        return RuleError(message, name=self.name)

    def type_of(self, value: Value) -> str | None:
        if isinstance(value, Count):
            return NUMBER
        if isinstance(value, Name):
            if value.path not in self.types:
                known = ", ".join(sorted(n for n in self.types if not n.startswith("count(")))
                raise self.error(f"unknown name {value.path!r}; known names: {known}")
            return self.types[value.path]
        v = value.value
        if v is None:
            return None
        if isinstance(v, bool):
            return BOOL
        return TEXT if isinstance(v, str) else NUMBER

    def column(self, value: Value) -> Callable[[Columns], Any]:
        if isinstance(value, Literal):
            constant = value.value
            return lambda columns: constant
        key = count_key(value) if isinstance(value, Count) else value.path
        return lambda columns: columns[key]

    def node(self, node: Node) -> Evaluator:
        if isinstance(node, And):
            parts = [self.node(item) for item in node.items]
            return lambda columns: reduce(np.logical_and, [part(columns) for part in parts])
        if isinstance(node, Or):
            parts = [self.node(item) for item in node.items]
            return lambda columns: reduce(np.logical_or, [part(columns) for part in parts])
        if isinstance(node, Not):
            inner = self.node(node.item)
            return lambda columns: ~inner(columns)
        if isinstance(node, Truthy):
            self.type_of(node.value)
            read = self.column(node.value)
            return lambda columns: _is(read(columns), True)
        if isinstance(node, Compare):
            return self.compare(node.op, node.left, node.right)
        if isinstance(node, Between):
            low, high = self.compare(">=", node.value, node.low), self.compare("<=", node.value, node.high)
            if node.negated:
                present = self.compare("!=", node.value, Literal(None))
                return lambda columns: present(columns) & ~(low(columns) & high(columns))
            return lambda columns: low(columns) & high(columns)
        if isinstance(node, In):
            tests = [self.compare("==", node.value, option) for option in node.options]
            if node.negated:
                present = self.compare("!=", node.value, Literal(None))
                return lambda columns: present(columns) & ~reduce(np.logical_or, [t(columns) for t in tests])
            return lambda columns: reduce(np.logical_or, [t(columns) for t in tests])
        raise TypeError(f"not a rule node: {node!r}")

    def compare(self, op: str, left: Value, right: Value) -> Evaluator:
        left_type, right_type = self.type_of(left), self.type_of(right)
        read_left, read_right = self.column(left), self.column(right)
        if left_type is None or right_type is None:  # == null / != null
            if op not in ("==", "!="):
                raise self.error(f"only == and != compare with null, not {op}")
            other = read_right if left_type is None else read_left
            want_missing = op == "=="
            return lambda columns: _missing(other(columns)) == want_missing
        if left_type != right_type:
            raise self.error(f"cannot compare {to_text(left)} ({left_type}) with {to_text(right)} ({right_type})")
        if left_type != NUMBER and op not in ("==", "!="):
            raise self.error(f"{op} compares numbers; {to_text(left)} is {left_type}")
        if left_type == NUMBER:
            compare = _NUMERIC[op]
            return lambda columns: _numeric(compare, read_left(columns), read_right(columns))
        equal = op == "=="
        return lambda columns: _equal_present(read_left(columns), read_right(columns), equal)


_NUMERIC = {
    "==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
}  # fmt: skip


def _numeric(compare, left: Any, right: Any) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        result = compare(left, right)
    # Missing (NaN) never compares true, != included.
    return np.asarray(result & ~np.isnan(left) & ~np.isnan(right), dtype=bool)


def _equal_present(left: Any, right: Any, equal: bool) -> np.ndarray:
    # Both sides have the same type (checked at compile time): plain == is exact.
    present = ~_missing(left) & ~_missing(right)
    same = np.asarray(left == right, dtype=bool)
    return present & (same if equal else ~same)


def _missing(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return np.asarray(np.equal(value, None), dtype=bool)
        return np.isnan(value)
    return np.bool_(value is None or (isinstance(value, float) and math.isnan(value)))


def _is(value: Any, wanted: bool) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return np.asarray(np.frompyfunc(lambda v: v is wanted, 1, 1)(value), dtype=bool)
    return np.asarray(value is wanted)
