"""Shared test helpers: waiting on a condition with a deadline (never a bare sleep), and a
database at the newest schema to start tests' data directories from."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from berth.config import Settings
from berth.store.db import Store

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}; last={last!r}")


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file at the newest schema, migrated once per test session."""
    data_dir = tmp_path_factory.mktemp("migrated")

    async def migrate() -> None:
        store = Store(Settings(data_dir=data_dir).resolved_database_url())
        await store.create_schema()
        await store.close()

    asyncio.run(migrate())
    return data_dir / "berth.db"


@pytest.fixture
def data_dir(tmp_path: Path, migrated_database: Path) -> Path:
    """A test's data directory, its database already at the newest schema (the start-up
    migration then finds nothing to do, which saves each test most of half a second)."""
    path = tmp_path / "data"
    path.mkdir()
    shutil.copy(migrated_database, path / "berth.db")
    return path
