"""Schedules fire on time, never overlap by default, and catch up once after downtime."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from berth.domain import locks, workloads
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.scheduling import fire_due_schedules
from berth.schemas.workloads import WorkloadCreate
from berth.store.models import Run, Workload
from berth.testing.waiting import poll_until
from tests.support.postgres import PostgresServer


async def make_schedule(domain: Domain, actor: Actor, expr: str = "*/5 * * * *") -> str:
    body = WorkloadCreate(
        name="nightly", type="schedule", image="img", command="true", schedule_expr=expr
    )
    view = await workloads.create_workload(domain, actor, body)
    return view.workload.id


async def runs_of(domain: Domain, workload_id: str) -> list[Run]:
    async with domain.store.reading() as session:
        return list(await session.scalars(select(Run).where(Run.workload_id == workload_id)))


async def set_next_run(domain: Domain, workload_id: str, when: datetime) -> None:
    async with domain.store.transaction() as session:
        workload = await session.get(Workload, workload_id)
        assert workload is not None
        workload.next_run_at = when


async def test_a_new_schedule_waits_for_its_first_fire(domain: Domain, actor: Actor) -> None:
    workload_id = await make_schedule(domain, actor)
    view = await workloads.get_workload(domain, actor, workload_id)
    assert view.workload.status == "scheduled"
    assert view.workload.next_run_at is not None
    assert view.workload.next_run_at > datetime.now(UTC)
    await fire_due_schedules(domain, datetime.now(UTC))
    assert await runs_of(domain, workload_id) == []


async def test_fires_missed_while_down_run_once_not_once_per_slot(
    domain: Domain, actor: Actor
) -> None:
    workload_id = await make_schedule(domain, actor)
    now = datetime.now(UTC)
    await set_next_run(domain, workload_id, now - timedelta(hours=2))  # 24 slots missed

    await fire_due_schedules(domain, now)
    await fire_due_schedules(domain, now)

    runs = await runs_of(domain, workload_id)
    assert [run.trigger for run in runs] == ["schedule"]
    view = await workloads.get_workload(domain, actor, workload_id)
    assert view.workload.next_run_at is not None and view.workload.next_run_at > now


async def test_a_fire_is_skipped_while_the_previous_run_still_runs(
    domain: Domain, actor: Actor
) -> None:
    workload_id = await make_schedule(domain, actor)
    now = datetime.now(UTC)
    await set_next_run(domain, workload_id, now)
    await fire_due_schedules(domain, now)
    later = now + timedelta(minutes=5)
    await set_next_run(domain, workload_id, later)

    await fire_due_schedules(domain, later)

    assert len(await runs_of(domain, workload_id)) == 1
    view = await workloads.get_workload(domain, actor, workload_id)
    assert view.workload.status_reason is not None
    assert "previous run still runs" in view.workload.status_reason


async def test_a_paused_schedule_does_not_fire(domain: Domain, actor: Actor) -> None:
    workload_id = await make_schedule(domain, actor, "rate(1 minutes)")
    await workloads.stop_workload(domain, actor, workload_id)
    await set_next_run(domain, workload_id, datetime.now(UTC) - timedelta(minutes=1))
    await fire_due_schedules(domain, datetime.now(UTC))
    assert await runs_of(domain, workload_id) == []


async def test_a_fire_waits_for_the_owners_row_before_it_takes_the_schedules(
    domain: Domain, actor: Actor, postgres_server: PostgresServer | None
) -> None:
    """On PostgreSQL a fire inserts runs, whose rows refer to the user's: it must lock the
    owner first, as every write of a user's runs does, or it would hold the schedule's row
    while waiting for the user's, and a stop of the schedule (the user's row, then the
    schedule's) would deadlock with it."""
    if postgres_server is None:
        pytest.skip("PostgreSQL only (BERTH_TEST_DATABASE=postgresql): SQLite has one writer")
    workload_id = await make_schedule(domain, actor)
    now = datetime.now(UTC)
    await set_next_run(domain, workload_id, now - timedelta(minutes=1))

    async def lock_waits() -> int:
        async with domain.store.reading() as session:
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
            return int(waiting or 0)

    async with domain.store.transaction() as session:
        assert await locks.lock_user(session, actor.user_id) is not None
        fire = asyncio.create_task(fire_due_schedules(domain, now))
        assert await poll_until(lock_waits, within=10.0)  # the fire waits for the user's row
        schedule = await session.scalar(
            select(Workload.id).where(Workload.id == workload_id).with_for_update(nowait=True)
        )
        assert schedule == workload_id  # and holds nothing of the schedule's meanwhile
    await asyncio.wait_for(fire, 10)
    assert [run.trigger for run in await runs_of(domain, workload_id)] == ["schedule"]
