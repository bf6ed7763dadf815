"""The rule language: parse, print and evaluate declarative segment rules.

A rule is a boolean expression over a user's features, traits and context::

    r_score >= 4 and f_score >= 4
    trait.age between 25 and 34 and device == "mobile" and local_hour between 9 and 17
    count(add_to_cart, 30m) >= 1 and count(purchase, 30m) == 0
    weekday in ("sat", "sun") or not (monetary > 100)

Grammar (keywords are lower case)::

    rule      := or
    or        := and ("or" and)*
    and       := not ("and" not)*
    not       := "not" not | test
    test      := "(" rule ")" | value [compare]
    compare   := ("==" | "!=" | "<" | "<=" | ">" | ">=") value
               | ["not"] "between" value "and" value
               | ["not"] "in" "(" literal ("," literal)* ")"
    value     := literal | name | "count" "(" event_type "," duration ")"
    literal   := number | "string" | true | false | null
    name      := identifier ("." identifier)*
    duration  := number followed by s, m, h or d (90s, 30m, 1h, 7d)

A value that is missing (``null``: a trait never sent, ``recency_days`` before the
first purchase) makes every comparison with it false, except ``== null`` and
``!= null``. A test without a comparison is true only when the value is ``true``.

Rules are parsed once, at start-up, into an AST: nothing is ever passed to
``eval``. An error names the rule and points at the position::

>>> parse("monetary >> 3", name="big")
Traceback (most recent call last):
...
app.core.rules.language.RuleError: rule 'big', position 10: expected a value, found '>'
  monetary >> 3
            ^

:func:`to_text` prints the canonical form; :mod:`app.core.rules.evaluate` evaluates.

>>> print(to_text(parse("monetary > 100 and device == 'mobile'")))
monetary > 100 and device == "mobile"
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Union


NUMBER, TEXT, BOOL = "number", "text", "bool"  # the types a name can have
DURATION_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
KEYWORDS = frozenset({"and", "or", "not", "between", "in", "true", "false", "null", "count"})


class RuleError(ValueError):
    """A rule that does not parse or does not type-check, with where and why."""

    def __init__(self, message: str, *, text: str = "", position: int = 0, name: str | None = None) -> None:
        where = f"rule {name!r}, position {position}" if name else f"position {position}"
        detail = f"{where}: {message}"
        if text:
            detail += f"\n  {text}\n  {' ' * position}^"
        super().__init__(detail)
        self.position = position
        self.rule = name


# -- the syntax tree ----------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: float | str | bool | None


@dataclass(frozen=True)
class Name:
    path: str  # "monetary", "trait.age"


@dataclass(frozen=True)
class Count:
    """Events of one type in the sliding window ending at the user's latest event."""

    event_type: str
    seconds: int


Value = Union[Literal, Name, Count]


@dataclass(frozen=True)
class Compare:
    op: str
    left: Value
    right: Value


@dataclass(frozen=True)
class Between:
    value: Value
    low: Value
    high: Value
    negated: bool = False


@dataclass(frozen=True)
class In:
    value: Value
    options: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class Truthy:
    value: Value


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node = Union[Compare, Between, In, Truthy, Not, And, Or]


# -- parsing ------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<duration>\d+(?:\.\d+)?[smhd](?![A-Za-z0-9_]))
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|,)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # duration, number, string, name, keyword, op, end
    text: str
    position: int


def _tokenize(text: str, name: str | None) -> list[_Token]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise RuleError(f"unexpected character {text[position]!r}", text=text, position=position, name=name)
        kind = match.lastgroup
        if kind != "space":
            word = match.group()
            if kind == "name" and word in KEYWORDS:
                kind = "keyword"
            tokens.append(_Token(kind, word, position))
        position = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str, name: str | None) -> None:
        self.text, self.name = text, name
        self.tokens = _tokenize(text, name)
        self.index = 0

    def error(self, message: str, token: _Token | None = None) -> RuleError:
        token = token or self.peek()
        return RuleError(message, text=self.text, position=token.position, name=self.name)

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, text: str) -> bool:
        token = self.peek()
        if token.kind in ("keyword", "op") and token.text == text:
            self.index += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.accept(text):
            raise self.error(f"expected {text!r}, found {_describe(self.peek())}")

    def rule(self) -> Node:
        node = self.or_()
        if self.peek().kind != "end":
            raise self.error(f"expected 'and', 'or' or the end, found {_describe(self.peek())}")
        return node

    def or_(self) -> Node:
        items = [self.and_()]
        while self.accept("or"):
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Node:
        items = [self.not_()]
        while self.accept("and"):
            items.append(self.not_())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_(self) -> Node:
        if self.accept("not"):
            return Not(self.not_())
        return self.test()

    def test(self) -> Node:
        if self.accept("("):
            node = self.or_()
            self.expect(")")
            return node
        value = self.value()
        token = self.peek()
        if token.kind == "op" and token.text in COMPARISONS:
            self.take()
            return Compare(token.text, value, self.value())
        negated = self.accept("not")
        if self.accept("between"):
            low = self.value()
            self.expect("and")
            return Between(value, low, self.value(), negated)
        if self.accept("in"):
            self.expect("(")
            options = [self.literal()]
            while self.accept(","):
                options.append(self.literal())
            self.expect(")")
            return In(value, tuple(options), negated)
        if negated:
            raise self.error(f"expected 'between' or 'in' after 'not', found {_describe(self.peek())}")
        return Truthy(value)

    def value(self) -> Value:
        token = self.peek()
        if token.kind == "keyword" and token.text == "count":
            self.take()
            self.expect("(")
            kind = self.take()
            if kind.kind == "string":
                event_type = _unquote(kind.text)
            elif kind.kind in ("name", "keyword"):
                event_type = kind.text
            else:
                raise self.error(f"expected an event type, found {_describe(kind)}", kind)
            self.expect(",")
            duration = self.take()
            if duration.kind != "duration":
                raise self.error(f"expected a duration such as 30m, found {_describe(duration)}", duration)
            self.expect(")")
            return Count(event_type, parse_duration(duration.text))
        if token.kind == "name":
            self.take()
            return Name(token.text)
        return self.literal()

    def literal(self) -> Literal:
        token = self.take()
        if token.kind == "number":
            number = float(token.text)
            if not math.isfinite(number):
                raise self.error(f"number {token.text} is out of range", token)
            return Literal(number)
        if token.kind == "string":
            return Literal(_unquote(token.text))
        if token.kind == "keyword" and token.text in ("true", "false", "null"):
            return Literal({"true": True, "false": False, "null": None}[token.text])
        raise self.error(f"expected a value, found {_describe(token)}", token)


def parse(text: str, *, name: str | None = None) -> Node:
    """Parse one rule; raises :class:`RuleError` pointing at the problem."""
    return _Parser(text, name).rule()


def parse_duration(text: str) -> int:
    """``"30m"`` -> 1800 seconds.

    >>> parse_duration("90s"), parse_duration("1.5h"), parse_duration("7d")
    (90, 5400, 604800)
    """
    seconds = float(text[:-1]) * DURATION_UNITS[text[-1]]
    if seconds <= 0 or seconds != int(seconds):
        raise RuleError(f"duration {text!r} must be a positive whole number of seconds")
    return int(seconds)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _describe(token: _Token) -> str:
    return "the end" if token.kind == "end" else repr(token.text)


# -- printing -----------------------------------------------------------------


def to_text(node: Node | Value) -> str:
    """The canonical text of a rule; ``parse(to_text(node)) == node``."""
    if isinstance(node, Literal):
        return _literal_text(node.value)
    if isinstance(node, Name):
        return node.path
    if isinstance(node, Count):
        kind = node.event_type
        plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", kind) and kind not in KEYWORDS
        return f"count({kind if plain else _literal_text(kind)}, {format_duration(node.seconds)})"
    if isinstance(node, Compare):
        return f"{to_text(node.left)} {node.op} {to_text(node.right)}"
    if isinstance(node, Between):
        neg = "not " if node.negated else ""
        return f"{to_text(node.value)} {neg}between {to_text(node.low)} and {to_text(node.high)}"
    if isinstance(node, In):
        neg = "not " if node.negated else ""
        return f"{to_text(node.value)} {neg}in ({', '.join(to_text(o) for o in node.options)})"
    if isinstance(node, Truthy):
        return to_text(node.value)
    if isinstance(node, Not):
        return f"not {_grouped(node.item, Not)}"
    if isinstance(node, And):
        return " and ".join(_grouped(item, And) for item in node.items)
    if isinstance(node, Or):
        return " or ".join(_grouped(item, Or) for item in node.items)
    raise TypeError(f"not a rule node: {node!r}")


def _grouped(node: Node, parent: type) -> str:
    # Parenthesise anything that binds looser than its parent (or/and/not), and
    # nested and/or of the same kind, which parse() would otherwise flatten.
    loose = {Or: (Or,), And: (Or, And), Not: (Or, And)}[parent]
    text = to_text(node)
    return f"({text})" if isinstance(node, loose) else text


def format_duration(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _literal_text(value: float | str | bool | None) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


# -- what a rule reads ----------------------------------------------------------


def count_key(node: Count) -> str:
    """The column name under which a ``count(type, window)`` value is supplied."""
    return f"count({node.event_type},{node.seconds})"


def names_in(node: Node | Value) -> set[str]:
    """Every name and count key a rule reads."""
    names = set()
    for part in _walk(node):
        if isinstance(part, Name):
            names.add(part.path)
        elif isinstance(part, Count):
            names.add(count_key(part))
    return names


def counts_in(node: Node | Value) -> set[tuple[str, int]]:
    """Every ``(event_type, seconds)`` window a rule counts over."""
    return {(n.event_type, n.seconds) for n in _walk(node) if isinstance(n, Count)}


def _walk(node: Any):
    yield node
    for child in getattr(node, "items", ()) or ():
        yield from _walk(child)
    for attr in ("item", "left", "right", "value", "low", "high"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, float, bool, int)):
            yield from _walk(child)
