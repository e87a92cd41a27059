"""SQLite connections that answer on the event loop, for every session of the store.

aiosqlite runs every call (execute, fetch, close, commit) on a thread of its own and hands
the result back to the loop: four or five thread hand-offs per query, each costing far more
than the query itself, since SQLite in WAL mode answers from the page cache in microseconds.
These classes give SQLAlchemy's aiosqlite dialect the same awaitable interface over a plain
`sqlite3` connection whose calls run inline, so a statement costs what SQLite costs.

A statement on the loop must never wait for a lock inside SQLite, since the whole process
would wait with it. Readers in WAL mode take no lock in the normal course (their busy timeout
is a short bound for rare cases); writers have a busy timeout of 0 and the store retries
`BEGIN IMMEDIATE` asleep on the loop while another process writes (`Store._while_busy`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any


class InlineCursor:
    """aiosqlite's cursor interface over a `sqlite3.Cursor`, running inline."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        self._cursor.execute(sql, () if parameters is None else parameters)
        return self

    async def executemany(self, sql: str, parameters: Any) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    async def close(self) -> None:
        self._cursor.close()


class _Immediate:
    """Stands in for aiosqlite's request queue, which SQLAlchemy's adapter uses to set the
    isolation level: the request runs at once and its future is resolved."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as error:
            future.set_exception(error)


class InlineConnection:
    """aiosqlite's connection interface over a `sqlite3.Connection`, running inline."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._tx = _Immediate()

    @property
    def _connection(self) -> sqlite3.Connection:
        """aiosqlite's name for the underlying connection (SQLAlchemy checks it is set)."""
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        self._conn.close()


def inline_connector(path: str, *, busy_timeout_ms: int) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine`: opens `path` in autocommit mode
    (SQLAlchemy's `begin` listener emits BEGIN itself) with a short busy timeout."""

    async def connect() -> InlineConnection:
        return InlineConnection(open_inline(path, busy_timeout_ms=busy_timeout_ms))

    return connect


def open_inline(path: str, *, busy_timeout_ms: int) -> sqlite3.Connection:
    """A `sqlite3` connection for use on the loop: autocommit mode (BEGIN is explicit), a
    short busy timeout, and room for every statement of the code in its prepared-statement
    cache."""
    return sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,  # used on the loop's thread; closed by gc on any thread
        timeout=busy_timeout_ms / 1000,
        cached_statements=256,
    )
