"""The API's read path: SQLite reads answer on the event loop (no thread per connection or
query), reading connections cannot write, and a workload view costs a fixed, small number
of queries whatever the number of workloads listed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from berth.domain import secrets, workloads
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.schemas.workloads import WorkloadCreate
from berth.store.db import Store


def schedule(name: str) -> WorkloadCreate:
    return WorkloadCreate.model_validate(
        {
            "name": name,
            "type": "schedule",
            "image": "img",
            "command": "true",
            "schedule_expr": "0 0 1 1 *",
        }
    )


@contextmanager
def counted_statements(store: Store) -> Iterator[list[str]]:
    """The SQL statements (not BEGIN/ROLLBACK) the store's readers run meanwhile."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.split()[0].upper() not in ("BEGIN", "ROLLBACK", "COMMIT", "PRAGMA"):
            seen.append(statement)

    engines = {store.engine.sync_engine, getattr(store, "reader", store.engine).sync_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


async def test_reads_start_no_thread(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}")
    try:
        threads = threading.active_count()
        for _ in range(3):
            async with store.reading() as session:
                assert (await session.execute(text("SELECT 1"))).scalar() == 1
        assert threading.active_count() == threads
    finally:
        await store.close()


async def test_a_reading_session_cannot_write(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}")
    try:
        async with store.transaction() as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
        async with store.reading() as session:
            with pytest.raises(OperationalError, match="readonly"):
                await session.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        await store.close()


async def test_a_read_sees_a_committed_write_at_once(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}")
    try:
        async with store.transaction() as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
        for n in range(5):
            async with store.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
            count = await store.read(lambda c: c.exec_driver_sql("SELECT count(*) FROM t").scalar())
            assert count == n + 1
    finally:
        await store.close()


async def test_a_workload_view_costs_a_few_queries_however_many_workloads(
    domain: Domain, actor: Actor
) -> None:
    created = [await workloads.create_workload(domain, actor, schedule(f"s{n}")) for n in range(6)]
    assert created[0].workload.name == "s0"
    await secrets.set_secret(domain, actor, created[0].workload.id, key="K", value="v")
    with counted_statements(domain.store) as one:
        view = await workloads.get_workload(domain, actor, created[0].workload.id)
    assert view.secret_keys == ["K"] and view.workload.name == "s0"
    with counted_statements(domain.store) as listed:
        views = await workloads.list_workloads(domain, actor)
    assert [v.workload.name for v in views] == [f"s{n}" for n in range(6)]
    assert len(one) <= 4, one
    assert len(listed) <= 4, listed
