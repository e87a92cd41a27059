"""The API's hot reads: prepared Core statements run without SQLAlchemy's per-call machinery.

A view's reads are a few `select()` statements built once at import. `Store.read` hands the
domain a `Reader` to run them with. Each statement is compiled once per dialect
(`PreparedStatements`) into its SQL text, the order of its parameters, its constant
parameters already converted, and the dialect's converter for each result column (the same
ones SQLAlchemy's results apply: dates, JSON, booleans); a call binds the parameters and
runs the text on the driver's own connection:

- `PreparedSqliteReader` (SQLite files): on a plain `sqlite3` connection on the event loop,
  inside one read transaction (one snapshot), whose own statement cache keeps each
  statement prepared in SQLite. No pool checkout, no events, no greenlet, no thread.
- `PreparedAsyncpgReader` (PostgreSQL through asyncpg): on the asyncpg connection under a
  pooled SQLAlchemy connection (set up with SQLAlchemy's codecs, so values convert as its
  results do), whose statement cache keeps each statement prepared on the server; the
  domain's synchronous calls reach it through SQLAlchemy's greenlet bridge, inside one
  read-only REPEATABLE READ transaction (one snapshot, as on SQLite: a read of several
  statements never mixes rows from before and after a commit); a single statement
  (`Store.read_first`) runs without one, being its own snapshot.
- `ConnectionReader` (any other database): the same statements on a SQLAlchemy connection,
  whose compiled cache keeps them compiled.

Rows are plain tuples in the order of the statement's columns.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Dialect, Float, Numeric, Select
from sqlalchemy.types import TypeEngine
from sqlalchemy.util import await_

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


class PreparedStatements:
    """Statements compiled once for one dialect (see the module docstring)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._prepared: dict[int, tuple[AnySelect, _Prepared]] = {}

    def get(self, statement: AnySelect) -> _Prepared:
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
            _result_processor(column.type, dialect) for column in statement.selected_columns
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

    @staticmethod
    def bind(prepared: _Prepared, params: Params) -> list[Any]:
        """The statement's parameter values in the SQL's order, converted for the driver."""
        values = []
        for name in prepared.names:
            if name in params:
                value = params[name]
                binder = prepared.binders[name]
                values.append(value if binder is None else binder(value))
            else:
                values.append(prepared.constants[name])
        return values

    @staticmethod
    def rows(prepared: _Prepared, rows: list[Row]) -> list[Row]:
        if not prepared.convert_any:
            return rows
        return [_convert(prepared.converters, row) for row in rows]


class PreparedSqliteReader:
    """`Reader` over a plain `sqlite3` connection, with statements compiled once."""

    def __init__(self, connection: sqlite3.Connection, dialect: Dialect) -> None:
        self.connection = connection
        self.statements = PreparedStatements(dialect)

    def all(self, statement: AnySelect, params: Params) -> list[Row]:
        prepared = self.statements.get(statement)
        rows = self.connection.execute(prepared.sql, self.statements.bind(prepared, params))
        return self.statements.rows(prepared, rows.fetchall())

    def first(self, statement: AnySelect, params: Params) -> Row | None:
        prepared = self.statements.get(statement)
        cursor = self.connection.execute(prepared.sql, self.statements.bind(prepared, params))
        row = cursor.fetchone()
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


class PreparedAsyncpgReader:
    """`Reader` over an asyncpg connection, with statements compiled once; its calls must
    run inside `sqlalchemy.util.greenlet_spawn` (they await the driver through it)."""

    def __init__(self, connection: Any, statements: PreparedStatements) -> None:
        self.connection = connection
        self.statements = statements

    def all(self, statement: AnySelect, params: Params) -> list[Row]:
        prepared = self.statements.get(statement)
        records = await_(
            self.connection.fetch(prepared.sql, *self.statements.bind(prepared, params))
        )
        return self.statements.rows(prepared, [tuple(record) for record in records])

    def first(self, statement: AnySelect, params: Params) -> Row | None:
        prepared = self.statements.get(statement)
        record = await_(
            self.connection.fetchrow(prepared.sql, *self.statements.bind(prepared, params))
        )
        if record is None:
            return None
        row = tuple(record)
        return _convert(prepared.converters, row) if prepared.convert_any else row

    def scalar(self, statement: AnySelect, params: Params) -> Any:
        row = self.first(statement, params)
        return None if row is None else row[0]

    def connection_lost(self) -> bool:
        """Whether the connection is gone (the server restarted or dropped it)."""
        return bool(self.connection.is_closed())


FLOAT8, NUMERIC = 701, 1700
"""PostgreSQL's type codes for `double precision` (what a `Float` column is made as) and
`numeric`."""


def _result_processor(type_: TypeEngine[Any], dialect: Dialect) -> _Convert:
    """The dialect's converter for a result column of `type_`. asyncpg's numeric types pick
    theirs by the type code the server sends, which a statement compiled ahead has not
    seen: a column comes back as the type it was made with (`double precision` for a
    `Float`), so that code stands in (other dialects ignore it)."""
    impl = type_.dialect_impl(dialect)
    code = None
    if isinstance(impl, (Numeric, Float)):
        code = FLOAT8 if isinstance(impl, Float) else NUMERIC
    processor: _Convert = impl.result_processor(dialect, code)
    return processor


def _convert(converters: tuple[_Convert, ...], row: Row) -> Row:
    return tuple(
        value if convert is None or value is None else convert(value)
        for convert, value in zip(converters, row, strict=True)
    )
