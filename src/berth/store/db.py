"""The database: one async engine per process, short transactions, no I/O inside them.

SQLite (the default) runs in WAL mode: readers never wait, and one writer at a time holds the
write lock. The writers of this process queue for it on an asyncio lock, in arrival order,
before they take a connection; SQLite's busy timeout is left for writers of other processes
(`berth admin`). Without the queue, concurrent writers each wait inside SQLite's busy handler,
which polls with naps of up to 100 ms and gives up after the timeout: under load, unlucky
writers lost the race for seconds and then failed with "database is locked", while holding a
pooled connection and a thread the whole time. `BERTH_DATABASE_URL` may point at PostgreSQL
instead, whose row locks need no queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from berth.store.migrate import upgrade


class Store:
    """Owns the engine; `transaction()` yields a session committed on success."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 10_000) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url)
        self._busy_timeout_ms = int(busy_timeout_ms)
        writer = self.engine
        self._writer_queue: AbstractAsyncContextManager[object] = nullcontext()
        if url.startswith("sqlite"):
            self._writer_queue = asyncio.Lock()
            event.listen(self.engine.sync_engine, "connect", self._sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
            writer = self.engine.execution_options(berth_write=True)
        # Reading sessions never flush: a change made while planning under a read must not
        # turn the read into a write (SQLite would refuse the upgrade under concurrency).
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._write_sessions = async_sessionmaker(writer, expire_on_commit=False)

    async def create_schema(self) -> None:
        """Bring the database to the newest schema (idempotent; runs the migrations)."""
        await upgrade(self.engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A read-write transaction; on SQLite it waits for this process's earlier writers
        (see the module's docstring), then takes the write lock up front (`BEGIN IMMEDIATE`)
        so it never fails on an upgrade from read to write. Transactions must not nest."""
        async with self._writer_queue, self._write_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only; nothing is committed."""
        async with self._sessions() as session:
            yield session

    async def close(self) -> None:
        await self.engine.dispose()

    def _sqlite_pragmas(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, see below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _sqlite_begin(conn: Any) -> None:
    if conn.get_execution_options().get("berth_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")
