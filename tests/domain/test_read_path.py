"""The API's read path: SQLite reads answer on the event loop (no thread per connection or
query), reading connections cannot write, and a workload view costs a fixed, small number
of queries whatever the number of workloads listed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, table, text, update
from sqlalchemy.exc import DBAPIError, OperationalError

from berth.domain import secrets, workloads
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.paging import PageRequest
from berth.domain.views import WorkloadFilter, WorkloadView, read_view_page
from berth.schemas.workloads import WorkloadCreate
from berth.store.db import Store
from berth.store.errors import StoreUnavailable
from berth.store.models import User
from berth.store.reads import ConnectionReader
from tests.support.statements import counted_statements

COUNT = select(func.count()).select_from(table("t"))


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


def all_views(domain: Domain, reader: Any, user_id: str) -> list[WorkloadView]:
    """The first page (of the largest size) of the user's workloads, newest first."""
    request = PageRequest(limit=500, after=None)
    return read_view_page(domain, reader, user_id, request, WorkloadFilter()).items


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


async def test_a_snapshot_reading_sees_one_moment_and_cannot_write(
    domain: Domain, actor: Actor
) -> None:
    """`reading(snapshot=True)`: a commit made while the session reads is not seen by its
    later statements, a new session sees it, and the session cannot write. What it proves
    is PostgreSQL's (the PostgreSQL pass): there a plain reading session would see the
    commit, where on SQLite every reading session is one read transaction."""
    balance = select(User.credits_micro).where(User.id == actor.user_id)
    async with domain.store.reading(snapshot=True) as session:
        before = await session.scalar(balance)
        async with domain.store.transaction() as writer:
            await writer.execute(
                update(User).where(User.id == actor.user_id).values(credits_micro=before + 7)
            )
        assert await session.scalar(balance) == before
        with pytest.raises(DBAPIError):
            await session.execute(
                update(User).where(User.id == actor.user_id).values(credits_micro=0)
            )
    async with domain.store.reading(snapshot=True) as session:
        assert await session.scalar(balance) == before + 7


async def test_a_read_sees_a_committed_write_at_once(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}")
    try:
        async with store.transaction() as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
        for n in range(5):
            async with store.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
            count = await store.read(lambda reader: reader.scalar(COUNT, {}))
            assert count == n + 1
    finally:
        await store.close()


async def test_a_workload_view_costs_a_few_queries_however_many_workloads(
    domain: Domain, actor: Actor
) -> None:
    created = [await workloads.create_workload(domain, actor, schedule(f"s{n}")) for n in range(6)]
    assert created[0].workload.name == "s0"
    await secrets.set_secret(domain, actor, created[0].workload.id, key="K", value="v")
    async with counted_statements(domain.store) as one:
        view = await workloads.get_workload(domain, actor, created[0].workload.id)
    assert view.secret_keys == ["K"] and view.workload.name == "s0"
    async with counted_statements(domain.store) as listed:
        views = (await workloads.list_workloads(domain, actor)).items
    assert [v.workload.name for v in views] == [f"s{n}" for n in reversed(range(6))]
    assert len(one) <= 4, one
    assert len(listed) <= 4, listed


async def test_prepared_reads_give_what_sqlalchemy_gives(domain: Domain, actor: Actor) -> None:
    """Dates (aware, UTC), JSON columns and booleans come back converted as SQLAlchemy's own
    results convert them."""
    job = WorkloadCreate.model_validate(
        {"name": "j", "type": "job", "image": "img", "command": ["sh", "-c", "true"]}
    )
    created = await workloads.create_workload(domain, actor, job)
    await workloads.create_workload(domain, actor, schedule("s"))
    await secrets.set_secret(domain, actor, created.workload.id, key="K", value="v")
    prepared = await domain.store.read(lambda reader: all_views(domain, reader, actor.user_id))
    async with domain.store.reader.connect() as connection:
        plain = await connection.run_sync(
            lambda sync: all_views(domain, ConnectionReader(sync), actor.user_id)
        )
    assert prepared == plain
    first = prepared[-1]
    assert first.workload.command == ["sh", "-c", "true"] and first.secret_keys == ["K"]
    assert first.workload.created_at.tzinfo is not None
    assert first.workload.scale_to_zero is False
    assert len(first.recent_runs) == 1 and first.recent_runs[0].created_at.tzinfo is not None


async def test_the_data_version_changes_with_every_commit_of_any_connection(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reads.db"
    store = Store(f"sqlite+aiosqlite:///{path}")
    try:
        async with store.transaction() as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
        seen = store.data_version()
        assert seen is not None
        assert await store.read(lambda reader: reader.scalar(COUNT, {})) == 0
        assert store.data_version() == seen  # reading changes nothing
        async with store.transaction() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))
        assert store.data_version() != seen
        seen = store.data_version()
        other = sqlite3.connect(path)  # another process's connection, say `berth admin`
        try:
            other.execute("INSERT INTO t VALUES (2)")
            other.commit()
        finally:
            other.close()
        assert store.data_version() != seen
    finally:
        await store.close()


async def test_writes_start_no_thread(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'writes.db'}")
    try:
        threads = threading.active_count()
        async with store.transaction() as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
        for n in range(3):
            async with store.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
        assert threading.active_count() == threads
    finally:
        await store.close()


async def test_a_writer_waits_for_another_process_asleep_and_then_commits(
    tmp_path: Path,
) -> None:
    """The loop keeps running while another process holds the write lock; the write goes
    through once it is released, and gives up (database is locked, a `StoreUnavailable` to
    retry) after the busy timeout."""
    path = tmp_path / "writes.db"
    store = Store(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=2000)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        async with store.transaction() as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
        other.execute("BEGIN IMMEDIATE")
        ticks = 0
        ten_ticks, released = asyncio.Event(), asyncio.Event()

        async def tick() -> None:  # the loop's heartbeat while the writer waits
            nonlocal ticks
            while not released.is_set():
                ticks += 1
                if ticks == 10:
                    ten_ticks.set()
                await asyncio.sleep(0.01)

        async def release_later() -> None:
            await ten_ticks.wait()
            other.execute("COMMIT")
            released.set()

        async def write() -> None:
            async with store.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES (1)"))

        await asyncio.gather(tick(), release_later(), write())
        assert ticks >= 10
        assert await store.read(lambda reader: reader.scalar(COUNT, {})) == 1

        quick = Store(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=100)
        other.execute("BEGIN IMMEDIATE")
        try:
            # A caller may retry: the API answers it 503 with Retry-After.
            with pytest.raises(StoreUnavailable) as refused:
                async with quick.transaction() as session:
                    await session.execute(text("INSERT INTO t VALUES (2)"))
            assert isinstance(refused.value.__cause__, OperationalError)
            assert "database is locked" in str(refused.value.__cause__)
        finally:
            other.execute("ROLLBACK")
            await quick.close()
    finally:
        other.close()
        await store.close()


async def test_checkpoints_run_off_the_loop_and_never_inside_a_commit(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}")
    try:
        async with store.transaction() as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
            autocheckpoint = await session.execute(text("PRAGMA wal_autocheckpoint"))
            assert autocheckpoint.scalar() == 0
        assert store.checkpointer is not None
        running = store.checkpointer._running
        assert running is not None  # the first commit started one
        await running
        assert store.checkpointer.checkpoints == 1
        async with store.transaction() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))
        assert store.checkpointer._running is None  # not again within the interval
    finally:
        await store.close()


async def test_sessions_never_wait_for_the_loop(tmp_path: Path) -> None:
    """A read or a write on SQLite completes without giving the loop a turn: a request that
    yields waits behind every other ready request (hundreds of milliseconds under load)."""
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    try:
        async with store.transaction() as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
        assert store.checkpointer is not None and store.checkpointer._running is not None
        await store.checkpointer._running
        turns: list[int] = []
        asyncio.get_running_loop().call_soon(turns.append, 1)
        async with store.reading() as session:
            await session.execute(text("SELECT count(*) FROM t"))
        async with store.transaction() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))
        assert await store.read(lambda reader: reader.scalar(COUNT, {})) == 1
        assert turns == []
    finally:
        await store.close()


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "job", "command": "true", "env": {"A": "1"}},
        {"type": "service", "replicas": 0, "port": 8080},
        {"type": "service", "replicas": 2, "command": ["sleep", "1"]},
        {"type": "schedule", "command": "true", "schedule_expr": "*/5 * * * *"},
    ],
)
async def test_a_creates_answer_built_from_what_it_wrote_is_what_a_read_returns(
    domain: Domain, actor: Actor, fields: dict[str, Any]
) -> None:
    body = WorkloadCreate.model_validate({"name": "new", "image": "img", **fields})
    answered = await workloads.create_workload(domain, actor, body)
    read = await workloads.get_workload(domain, actor, answered.workload.id)
    assert answered == read
    assert len(read.recent_runs) == (1 if fields["type"] == "job" else 0)
