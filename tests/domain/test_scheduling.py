"""Schedules fire on time, never overlap by default, and catch up once after downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from berth.domain import workloads
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.scheduling import fire_due_schedules
from berth.schemas.workloads import WorkloadCreate
from berth.store.models import Run, Workload


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
