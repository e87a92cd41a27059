"""The database: one async engine per process, short transactions, no I/O inside them.

SQLite (the default) runs in WAL mode with a busy timeout so the API and the controllers can
write concurrently; `BERTH_DATABASE_URL` may point at PostgreSQL instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url)
        writer = self.engine
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
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
        """A read-write transaction; on SQLite it takes the write lock up front
        (`BEGIN IMMEDIATE`), so concurrent writers queue instead of failing."""
        async with self._write_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only; nothing is committed."""
        async with self._sessions() as session:
            yield session

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, see below
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    if conn.get_execution_options().get("berth_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")
