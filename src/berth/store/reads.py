"""The API's hot reads: prepared Core statements run without SQLAlchemy's per-call machinery.

A view's reads are a few `select()` statements built once at import. `Store.read` hands the
domain a `Reader` to run them with, inside one read transaction:

- `PreparedSqliteReader` (SQLite files): each statement is compiled once for the dialect
  into its SQL text, the order of its parameters, its constant parameters already converted,
  and the dialect's converter for each result column (the same ones SQLAlchemy's results
  apply: dates, JSON, booleans). A call binds the parameters and runs the text on a plain
  `sqlite3` connection on the event loop, whose own statement cache keeps it prepared in
  SQLite. No pool checkout, no events, no greenlet, no thread.
- `ConnectionReader` (any other database): the same statements on a SQLAlchemy connection,
  whose compiled cache keeps them compiled.

Rows are plain tuples in the order of the statement's columns.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Dialect, Select

Row = tuple[Any, ...]
AnySelect = Select[*tuple[Any, ...]]
Params = Mapping[str, Any]
_Convert = Callable[[Any], Any] | None


class Reader(Protocol):
    """Runs prepared `select()` statements inside `Store.read`."""

    def all(self, statement: AnySelect, params: Params) -> list[Row]: ...

    def first(self, statement: AnySelect, params: Params) -> Row | None: ...

    def scalar(self, statement: AnySelect, params: Params) -> Any: ...


class ConnectionReader:
    """`Reader` over a SQLAlchemy connection (run inside `AsyncConnection.run_sync`)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def all(self, statement: AnySelect, params: Params) -> list[Row]:
        return [tuple(row) for row in self.connection.execute(statement, dict(params))]

    def first(self, statement: AnySelect, params: Params) -> Row | None:
        row = self.connection.execute(statement, dict(params)).first()
        return None if row is None else tuple(row)

    def scalar(self, statement: AnySelect, params: Params) -> Any:
        return self.connection.execute(statement, dict(params)).scalar()


@dataclass(frozen=True)
class _Prepared:
    sql: str
    names: tuple[str, ...]
    """The parameters in the order of the SQL's `?` marks."""
    constants: dict[str, Any]
    """Parameters with a value in the statement itself, converted for the driver."""
    binders: dict[str, _Convert]
    converters: tuple[_Convert, ...]
    convert_any: bool


class PreparedSqliteReader:
    """`Reader` over a plain `sqlite3` connection, with statements compiled once."""

    def __init__(self, connection: sqlite3.Connection, dialect: Dialect) -> None:
        self.connection = connection
        self.dialect = dialect
        self._prepared: dict[int, tuple[Select[*tuple[Any, ...]], _Prepared]] = {}

    def all(self, statement: AnySelect, params: Params) -> list[Row]:
        prepared = self._prepare(statement)
        rows = self.connection.execute(prepared.sql, self._bind(prepared, params)).fetchall()
        if not prepared.convert_any:
            return rows
        return [_convert(prepared.converters, row) for row in rows]

    def first(self, statement: AnySelect, params: Params) -> Row | None:
        prepared = self._prepare(statement)
        row = self.connection.execute(prepared.sql, self._bind(prepared, params)).fetchone()
        if row is None or not prepared.convert_any:
            return row  # type: ignore[no-any-return]
        return _convert(prepared.converters, row)

    def scalar(self, statement: AnySelect, params: Params) -> Any:
        row = self.first(statement, params)
        return None if row is None else row[0]

    def data_version(self) -> int:
        """SQLite's count of commits by other connections, as this connection sees it."""
        (version,) = self.connection.execute("PRAGMA data_version").fetchone()
        return int(version)

    def begin(self) -> None:
        self.connection.execute("BEGIN")

    def end(self) -> None:
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")

    @staticmethod
    def _bind(prepared: _Prepared, params: Params) -> list[Any]:
        values = []
        for name in prepared.names:
            if name in params:
                value = params[name]
                binder = prepared.binders[name]
                values.append(value if binder is None else binder(value))
            else:
                values.append(prepared.constants[name])
        return values

    def _prepare(self, statement: AnySelect) -> _Prepared:
        known = self._prepared.get(id(statement))
        if known is not None and known[0] is statement:
            return known[1]
        compiled = statement.compile(dialect=self.dialect)
        if compiled.positiontup is None or getattr(compiled, "post_compile_params", None):
            raise ValueError("a prepared read takes positional, non-expanding parameters")
        dialect = self.dialect
        binders: dict[str, _Convert] = {}
        constants: dict[str, Any] = {}
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            binder = bind.type.dialect_impl(dialect).bind_processor(dialect)
            binders[name] = binder
            if bind.value is not None or bind.callable is not None:
                value = bind.effective_value
                constants[name] = value if binder is None else binder(value)
        converters = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.selected_columns
        )
        prepared = _Prepared(
            sql=str(compiled),
            names=tuple(compiled.positiontup),
            constants=constants,
            binders=binders,
            converters=converters,
            convert_any=any(c is not None for c in converters),
        )
        # Keyed by identity and holding the statement: prepared statements live at module
        # level, so this holds one entry per statement of the code.
        self._prepared[id(statement)] = (statement, prepared)
        return prepared


def _convert(converters: tuple[_Convert, ...], row: Row) -> Row:
    return tuple(
        value if convert is None or value is None else convert(value)
        for convert, value in zip(converters, row, strict=True)
    )
