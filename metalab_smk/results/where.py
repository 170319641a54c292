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
with one line naming where; the parsed condition becomes SQL through ``psycopg.sql``
with every value a query parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from metalab_smk.errors import QueryError

__all__ = ["Condition", "compile_condition", "parse_where"]

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


class _Compiler:
    """SQL over ``metalab.runs r`` for a parsed condition; values become parameters."""

    def __init__(self, reserved: Iterable[str]) -> None:
        from psycopg import sql

        self.sql = sql
        self.reserved = set(reserved) - {"tags"}  # tags: a JSONB list; the table joins it
        self.values: list[Any] = []

    def param(self, value: Any) -> Any:
        self.values.append(value)
        return self.sql.Placeholder()

    def column(self, name: str) -> Any:
        """The column's value as JSONB (JSON null and a missing key alike)."""
        sql = self.sql
        if name in self.reserved:
            return sql.SQL("to_jsonb(r.{})").format(sql.Identifier(name))
        if name.startswith("param_"):
            return sql.SQL("(r.params -> {})").format(self.param(name[len("param_") :]))
        metric = name[len("metric_") :] if name.startswith("metric_") else None
        if metric is not None and (metric in self.reserved or metric.startswith("param_")):
            name = metric  # a metric named like another column is shown as metric_<name>
        elif name == "tags":
            return sql.SQL("(r.row -> 'tags')::jsonb")
        return sql.SQL("(r.metrics -> {})").format(self.param(name))

    def typed(self, name: str, value: Literal) -> Any:
        """The column's value as SQL of ``value``'s type, NULL when it has another type."""
        if isinstance(value, bool):
            kind, cast = "boolean", "({})::boolean"
        elif isinstance(value, str):
            kind, cast = "string", "({}) #>> '{{}}'"
        else:
            kind, cast = "number", "({})::numeric"
        sql = self.sql
        test = sql.SQL("jsonb_typeof({}) = {}").format(self.column(name), sql.Literal(kind))
        return sql.SQL("CASE WHEN {} THEN {} END").format(
            test, sql.SQL(cast).format(self.column(name))
        )

    def compile(self, condition: Condition) -> Any:
        sql = self.sql
        if isinstance(condition, Compare):
            left = self.typed(condition.column, condition.value)
            return sql.SQL("({} {} {})").format(
                left, sql.SQL(condition.op), self.param(condition.value)
            )
        if isinstance(condition, IsNull):
            value = self.column(condition.column)
            return sql.SQL("(coalesce(jsonb_typeof({}), 'null') = 'null')").format(value)
        if isinstance(condition, Not):
            return sql.SQL("(NOT {})").format(self.compile(condition.operand))
        joiner = sql.SQL(" AND " if condition.all_of else " OR ")
        return sql.SQL("({})").format(joiner.join(self.compile(c) for c in condition.operands))


def compile_condition(
    condition: Condition, known: Iterable[str], reserved: Iterable[str], text: str
) -> tuple[Any, list[Any]]:
    """(``psycopg.sql`` condition on ``metalab.runs r``, its parameters); a column not in
    ``known`` (the indexed tables' columns) is a QueryError naming it."""
    columns = set(known)
    for name in columns_of(condition):
        if name not in columns:
            shown = ", ".join(sorted(columns)[:20]) or "none"
            raise QueryError(f"where={text!r}: no column {name!r} in the index (columns: {shown})")
    compiler = _Compiler(reserved)
    return compiler.compile(condition), compiler.values
