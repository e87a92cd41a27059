"""Fixtures for every tier: a database at the newest schema to start tests' data directories
from. Helpers that tests import live in `tests/support` (see its README).

The database is a SQLite file in the test's data directory, or with
`BERTH_TEST_DATABASE=postgresql` a database of its own on a PostgreSQL server started for the
run (`tests/support/postgres.py`), named to the code through `BERTH_DATABASE_URL` as an
operator would."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.config import Settings
from berth.store.db import Store
from tests.support import postgres

TEMPLATE_DATABASE = "berth_migrated"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.PostgresServer | None]:
    """This run's PostgreSQL server, or None when the run is on SQLite."""
    if not postgres.wanted():
        yield None
        return
    yield postgres.run_server()  # stopped by `_stop_postgres_at_the_end`


@pytest.fixture(scope="session", autouse=True)
def _stop_postgres_at_the_end() -> Iterator[None]:
    """Stop this run's PostgreSQL server, also when only test servers used it."""
    yield
    postgres.stop_run_server()


async def _migrate(url: str) -> None:
    store = Store(url)
    await store.create_schema()
    await store.close()


@pytest.fixture(scope="session")
def migrated_database(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: postgres.PostgresServer | None
) -> Path | str:
    """The database at the newest schema, migrated once per test session: a SQLite file,
    or on PostgreSQL the name of a template database."""
    if postgres_server is not None:
        asyncio.run(_migrate(postgres_server.create(TEMPLATE_DATABASE)))
        return TEMPLATE_DATABASE
    data_dir = tmp_path_factory.mktemp("migrated")
    asyncio.run(_migrate(Settings(data_dir=data_dir).resolved_database_url()))
    return data_dir / "berth.db"


@pytest.fixture
def database_url(
    tmp_path: Path,
    migrated_database: Path | str,
    postgres_server: postgres.PostgresServer | None,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """A fresh database at the newest schema for this test; its URL. On PostgreSQL it is
    also `BERTH_DATABASE_URL`, so settings made by the test name it."""
    if postgres_server is None:
        path = tmp_path / "data" / "berth.db"
        path.parent.mkdir(exist_ok=True)
        shutil.copy(Path(migrated_database), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    name, url = postgres.new_database("berth_test", template=str(migrated_database))
    monkeypatch.setenv("BERTH_DATABASE_URL", url)
    try:
        yield url
    finally:
        postgres_server.drop(name)


@pytest.fixture
def data_dir(tmp_path: Path, database_url: str) -> Path:
    """A test's data directory, its database already at the newest schema (the start-up
    migration then finds nothing to do, which saves each test most of half a second)."""
    path = tmp_path / "data"
    path.mkdir(exist_ok=True)
    return path
