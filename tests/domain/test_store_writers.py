"""The store's writers under concurrency: they queue in arrival order instead of racing in
SQLite's busy handler, so none fails with "database is locked" however long the queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from berth.store.db import Store

WRITERS = 8
HOLD_SECONDS = 0.05
BUSY_TIMEOUT_MS = 100
"""The writers together hold the lock for 0.4 s, four times SQLite's busy timeout: racing
for the lock in SQLite, the later ones would fail; queued, they all wait their turn."""


async def test_concurrent_writers_all_commit_in_arrival_order(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'writers.db'}", busy_timeout_ms=BUSY_TIMEOUT_MS)
    try:
        async with store.transaction() as session:
            await session.execute(text("CREATE TABLE writes (n INTEGER)"))

        async def write(n: int) -> None:
            async with store.transaction() as session:
                await session.execute(text("INSERT INTO writes VALUES (:n)"), {"n": n})
                await asyncio.sleep(HOLD_SECONDS)  # a slow event loop between statements

        await asyncio.gather(*(write(n) for n in range(WRITERS)))

        async with store.reading() as session:
            rows = (await session.execute(text("SELECT n FROM writes ORDER BY rowid"))).all()
        assert [n for (n,) in rows] == list(range(WRITERS))
    finally:
        await store.close()
