"""Schema migrations: `upgrade` brings a database to the newest schema at start-up.

Migrations are Alembic scripts in `berth/store/migrations/versions`; no `alembic.ini` is
needed, so the server and the admin commands migrate the same way. The same scripts serve
SQLite and PostgreSQL. On PostgreSQL several replicas may start at once: each migrates
under one advisory lock, so they take turns.

On SQLite a migration that rebuilds a table (copy, drop, rename: SQLite's way of altering
one) runs with foreign keys off, as SQLite's documentation prescribes, since dropping a
table that other rows refer to would fail; the references are checked once it is done.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x62657274
"""The PostgreSQL advisory lock a migration holds (any number berth alone uses)."""


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _migrate(engine, lambda sync: command.upgrade(alembic_config(sync), revision))


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    await _migrate(engine, lambda sync: command.downgrade(alembic_config(sync), revision))


async def _migrate(engine: AsyncEngine, run: Callable[[Connection], None]) -> None:
    async with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            await _sqlite_foreign_keys(conn, on=False)
        try:
            async with conn.begin():
                if conn.dialect.name == "postgresql":
                    # Replicas starting together migrate one after the other (DDL is
                    # transactional there: the second finds the schema at head).
                    await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
                await conn.run_sync(run)
                if sqlite:
                    broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                    if broken:
                        raise RuntimeError(f"a migration broke references: {broken[:5]}")
        finally:
            if sqlite:
                await _sqlite_foreign_keys(conn, on=True)


async def _sqlite_foreign_keys(conn: AsyncConnection, *, on: bool) -> None:
    """Set SQLite's `foreign_keys` on the driver's connection itself: the pragma does nothing
    inside a transaction, and SQLAlchemy would begin one for a statement of its own."""
    raw = await conn.get_raw_connection()
    await raw.driver_connection.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")  # type: ignore[union-attr]
