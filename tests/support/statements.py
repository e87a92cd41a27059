"""The SQL statements a store runs, on both of its read paths (for tests that count them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event

from berth.store.db import Store


@asynccontextmanager
async def counted_statements(store: Store) -> AsyncIterator[list[str]]:
    """The SQL statements (not BEGIN/ROLLBACK) the store runs meanwhile: those SQLAlchemy
    runs (on SQLite and PostgreSQL), and those of the prepared reads (on SQLite their own
    connection's; on PostgreSQL every statement an asyncpg connection of the pool runs
    outside SQLAlchemy's prepared statements, which asyncpg's query log does not show)."""
    seen: list[str] = []

    def trace(statement: str) -> None:
        if statement.split()[0].upper().rstrip(";") not in (
            "BEGIN",
            "ROLLBACK",
            "COMMIT",
            "PRAGMA",
        ):
            seen.append(statement)

    if store.url.startswith("postgresql"):
        drivers: list[Any] = []

        def log(query: Any) -> None:
            trace(query.query)

        def hook(dbapi_connection: Any, *_args: Any) -> None:
            driver = dbapi_connection.driver_connection
            if driver not in drivers:
                driver.add_query_logger(log)
                drivers.append(driver)

        def record_orm(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            trace(statement)

        pool = store.engine.sync_engine.pool
        event.listen(pool, "checkout", hook)
        event.listen(store.engine.sync_engine, "before_cursor_execute", record_orm)
        try:
            yield seen
        finally:
            event.remove(pool, "checkout", hook)
            event.remove(store.engine.sync_engine, "before_cursor_execute", record_orm)
            for driver in drivers:
                driver.remove_query_logger(log)
        return

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        trace(statement)

    engines = {store.engine.sync_engine, store.reader.sync_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    await store.read(lambda reader: None)  # opens the prepared reads' connection
    prepared = store._prepared_reader
    if prepared is not None:  # a file: its prepared reads have a connection of their own
        prepared.connection.set_trace_callback(trace)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
        if prepared is not None:
            prepared.connection.set_trace_callback(None)
