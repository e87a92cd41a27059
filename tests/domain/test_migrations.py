"""The migrations build exactly the schema the models describe, and unwind cleanly."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from berth.store.db import Store
from berth.store.migrate import downgrade, upgrade
from berth.store.models import Base


async def test_upgrade_matches_the_models_and_downgrade_removes_everything(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    try:
        await upgrade(store.engine)
        await upgrade(store.engine)  # idempotent
        async with store.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
        assert diff == []

        await downgrade(store.engine)
        async with store.engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert set(tables) <= {"alembic_version"}
    finally:
        await store.close()
