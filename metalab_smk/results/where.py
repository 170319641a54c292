"""``load_results(URL, where=...)``: a small condition language over the results columns.

A condition compares columns of the results table with literals and is parsed here,
never passed to the database as text::

    final_loss < 0.2 AND (param_opt = 'adam' OR param_lr IN (0.1, 0.3))
    NOT status = 'success' OR error_type IS NOT NULL

Columns: the table's own (``status``, ``duration_ms``, ..., ``param_<name>``, metrics by
name); a name that is not a plain word goes in double quotes (``"val/loss" < 1``).
Operators: ``= == != <> < <= > >=``, ``[NOT] IN (...)``, ``IS [NOT] NULL``, ``AND``,
``OR``, ``NOT`` and parentheses. Literals: numbers, 'strings' (``''`` for a quote),
``TRUE``, ``FALSE``. A comparison holds only for values of the literal's type (a string
is never ``< 0.2``). Anything else (a semicolon, a comment, a function call) is refused
with one line naming where; the parsed condition becomes SQL in ``results/index/where_sql.py``
(``psycopg.sql``, every value a query parameter).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from metalab_smk.errors import QueryError

__all__ = ["Condition", "columns_of", "parse_where"]

Literal = Decimal | int | str | bool
COMPARISONS = {  # as written -> as sent
    **{"=": "=", "==": "=", "!=": "<>", "<>": "<>"},
    **{"<": "<", "<=": "<=", ">": ">", ">=": ">="},
}
KEYWORDS = {"AND", "OR", "NOT", "IN", "IS", "NULL", "TRUE", "FALSE"}
EXAMPLE = "e.g. \"final_loss < 0.2 AND param_opt IN ('adam', 'sgd')\""

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<string>'(?:[^']|'')*')
    | (?P<quoted>"(?:[^"]|"")+")
    | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    | (?P<op><=|>=|!=|<>|==|[=<>(),-])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, column, keyword, op, end
    value: Any
    at: int  # position in the condition (for error messages)


@dataclass(frozen=True)
class Compare:
    column: str
    op: str  # one of the values of COMPARISONS
    value: Literal


@dataclass(frozen=True)
class IsNull:
    column: str


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class Both:
    """AND (``all_of``) or OR of its operands."""

    operands: tuple[Condition, ...]
    all_of: bool


Condition = Compare | IsNull | Not | Both


def _tokens(text: str) -> list[Token]:
    found, at = [], 0
    while text[at:].strip():
        match = _TOKEN.match(text, at)
        if match is None:
            where = at + len(text[at:]) - len(text[at:].lstrip())
            raise _error(text, f"unexpected {text[where]!r}", where)
        kind = match.lastgroup or ""
        raw, start = match.group(kind), match.start(kind)
        if kind == "number":
            value: Any = Decimal(raw) if any(c in raw for c in ".eE") else int(raw)
        elif kind == "string":
            value = raw[1:-1].replace("''", "'")
        elif kind == "quoted":
            kind, value = "column", raw[1:-1].replace('""', '"')
        elif kind == "word" and raw.upper() in KEYWORDS:
            kind, value = "keyword", raw.upper()
        elif kind == "word":
            kind, value = "column", raw
        else:
            value = raw
        found.append(Token(kind, value, start))
        at = match.end()
    return [*found, Token("end", None, len(text))]


def _error(text: str, what: str, at: int) -> QueryError:
    return QueryError(f"where={text!r}: {what} at position {at}; {EXAMPLE}")


class _Parser:
    """Recursive descent: or := and (OR and)*; and := not (AND not)*;
    not := NOT not | '(' or ')' | comparison."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self, kind: str, value: Any = None) -> Token | None:
        token = self.peek()
        if token.kind == kind and (value is None or token.value == value):
            self.i += 1
            return token
        return None

    def need(self, kind: str, value: Any, what: str) -> Token:
        token = self.take(kind, value)
        if token is None:
            raise self.fail(what)
        return token

    def fail(self, expected: str) -> QueryError:
        token = self.peek()
        got = "the end" if token.kind == "end" else repr(self.text[token.at :].split()[0])
        return _error(self.text, f"expected {expected}, found {got}", token.at)

    def parse(self) -> Condition:
        condition = self.disjunction()
        if self.peek().kind != "end":
            raise self.fail("AND, OR or the end")
        return condition

    def disjunction(self) -> Condition:
        return self._chain("OR", self.conjunction, all_of=False)

    def conjunction(self) -> Condition:
        return self._chain("AND", self.negation, all_of=True)

    def _chain(self, keyword: str, operand: Any, all_of: bool) -> Condition:
        operands = [operand()]
        while self.take("keyword", keyword):
            operands.append(operand())
        return operands[0] if len(operands) == 1 else Both(tuple(operands), all_of)

    def negation(self) -> Condition:
        if self.take("keyword", "NOT"):
            return Not(self.negation())
        if self.take("op", "("):
            inner = self.disjunction()
            self.need("op", ")", "')'")
            return inner
        return self.comparison()

    def comparison(self) -> Condition:
        column = self.take("column")
        if column is None:
            raise self.fail("a column name, NOT or '('")
        name = column.value
        if self.take("keyword", "IS"):
            negated = self.take("keyword", "NOT") is not None
            self.need("keyword", "NULL", "NULL")
            return Not(IsNull(name)) if negated else IsNull(name)
        negated = self.take("keyword", "NOT") is not None
        if negated or self.take("keyword", "IN"):
            if negated:
                self.need("keyword", "IN", "IN")
            found = Both(tuple(Compare(name, "=", v) for v in self.literal_list()), False)
            return Not(found) if negated else found
        op = self.peek()
        if op.kind != "op" or op.value not in COMPARISONS:
            raise self.fail(f"a comparison (=, !=, <, <=, >, >=, IN, IS NULL) after {name!r}")
        self.i += 1
        return Compare(name, COMPARISONS[op.value], self.literal())

    def literal_list(self) -> list[Literal]:
        self.need("op", "(", "'(' after IN")
        values = [self.literal()]
        while self.take("op", ","):
            values.append(self.literal())
        self.need("op", ")", "')' or ','")
        return values

    def literal(self) -> Literal:
        if self.take("op", "-"):
            number = self.need("number", None, "a number after '-'")
            return -number.value
        token = self.peek()
        if token.kind in ("number", "string"):
            self.i += 1
            return token.value
        if self.take("keyword", "TRUE"):
            return True
        if self.take("keyword", "FALSE"):
            return False
        raise self.fail("a number, a 'string', TRUE or FALSE")


def parse_where(text: str) -> Condition:
    """The condition ``text`` parsed, or QueryError (one line) naming what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise QueryError(f"where={text!r}: expected a condition; {EXAMPLE}")
    return _Parser(text).parse()


def columns_of(condition: Condition) -> Iterable[str]:
    """Every column the condition names."""
    if isinstance(condition, Compare | IsNull):
        yield condition.column
    elif isinstance(condition, Not):
        yield from columns_of(condition.operand)
    else:
        for operand in condition.operands:
            yield from columns_of(operand)
