"""The SQL of a parsed ``where=`` condition over ``metalab.runs r`` (``psycopg.sql``;
every value a parameter, every column an identifier or a JSON key parameter)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from metalab_smk.errors import QueryError
from metalab_smk.results.where import Compare, Condition, IsNull, Literal, Not, columns_of

__all__ = ["compile_condition"]


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
