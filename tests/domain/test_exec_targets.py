"""Which task an exec or shell goes to: never one being retired by a roll or a stop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from berth.domain import execution, lifecycle, secrets, workloads
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.errors import Conflict
from berth.domain.execution import RollingOut, running_target
from berth.schemas.workloads import WorkloadCreate
from berth.store.models import Run, Workload


async def runs_of(domain: Domain, workload_id: str) -> list[Run]:
    async with domain.store.reading() as session:
        rows = await session.scalars(
            select(Run).where(Run.workload_id == workload_id).order_by(Run.created_at)
        )
        return list(rows)


async def running_service(domain: Domain, actor: Actor) -> tuple[str, Run]:
    """A service whose one task (generation 1) runs."""
    body = WorkloadCreate(name="svc", type="service", image="img")
    svc = (await workloads.create_workload(domain, actor, body)).workload
    await lifecycle.converge_desired_runs(domain, datetime.now(UTC))
    (run,) = await runs_of(domain, svc.id)
    await lifecycle.mark_run_started(domain, run.id, task_id="old", started_at=datetime.now(UTC))
    return svc.id, run


async def set_secret_and_plan(domain: Domain, actor: Actor, workload_id: str) -> Run:
    """Set a secret (a new generation) and let the planner add its task; the new run."""
    await secrets.set_secret(domain, actor, workload_id, key="TOKEN", value="v")
    await lifecycle.converge_desired_runs(domain, datetime.now(UTC))
    async with domain.store.reading() as session:
        workload = await session.get(Workload, workload_id)
    assert workload is not None
    new = [r for r in await runs_of(domain, workload_id) if r.generation == workload.generation]
    assert len(new) == 1 and new[0].status == "pending"
    return new[0]


async def test_right_after_a_secret_set_the_target_is_the_new_generations_task(
    domain: Domain, actor: Actor
) -> None:
    workload_id, old = await running_service(domain, actor)
    await secrets.set_secret(domain, actor, workload_id, key="TOKEN", value="v2")
    # The old task still runs, but it is on its way out: nothing is sent there, before the
    # planner added the new task and after.
    with pytest.raises(RollingOut, match="rolling out generation 2"):
        await running_target(domain, actor, workload_id, None, wait_seconds=0)
    new = await set_secret_and_plan(domain, actor, workload_id)
    with pytest.raises(RollingOut, match="rolling out generation 3"):
        await running_target(domain, actor, workload_id, None, wait_seconds=0)

    # A caller that asks now waits for the new task, and gets it once it runs.
    waiting = asyncio.create_task(running_target(domain, actor, workload_id, None))
    await lifecycle.mark_run_started(domain, new.id, task_id="new", started_at=datetime.now(UTC))
    target = await asyncio.wait_for(waiting, timeout=10)
    assert (target.run.id, target.run.generation, target.run.task_id) == (new.id, 3, "new")
    assert target.run.id != old.id


async def test_the_old_task_stays_refused_while_it_is_being_stopped(
    domain: Domain, actor: Actor
) -> None:
    workload_id, old = await running_service(domain, actor)
    new = await set_secret_and_plan(domain, actor, workload_id)
    await lifecycle.mark_run_started(domain, new.id, task_id="new", started_at=datetime.now(UTC))
    await lifecycle.converge_desired_runs(domain, datetime.now(UTC))  # stops the old one
    async with domain.store.reading() as session:
        stopping = await session.get(Run, old.id)
    assert stopping is not None and stopping.status == "running" and stopping.stop_requested

    target = await running_target(domain, actor, workload_id, None, wait_seconds=0)
    assert target.run.id == new.id
    with pytest.raises(Conflict, match=f"task {old.id} is being stopped"):
        await running_target(domain, actor, workload_id, old.id, wait_seconds=0)


async def test_a_named_task_of_an_older_generation_is_refused_not_cut(
    domain: Domain, actor: Actor
) -> None:
    workload_id, old = await running_service(domain, actor)
    await set_secret_and_plan(domain, actor, workload_id)
    with pytest.raises(Conflict, match="being replaced by generation 2") as refused:
        await running_target(domain, actor, workload_id, old.id, wait_seconds=0)
    assert not isinstance(refused.value, RollingOut)
    # Checked before an approval is asked for, too: approving it could only fail.
    with pytest.raises(Conflict, match="being replaced"):
        await execution.check_target(domain, actor, workload_id, old.id)


async def test_a_starting_task_is_not_a_reason_to_refuse_a_gated_call(
    domain: Domain, actor: Actor
) -> None:
    workload_id, _old = await running_service(domain, actor)
    await set_secret_and_plan(domain, actor, workload_id)
    await execution.check_target(domain, actor, workload_id, None)


async def test_a_job_keeps_its_running_task_as_target_after_a_secret_set(
    domain: Domain, actor: Actor
) -> None:
    body = WorkloadCreate(name="job", type="job", image="img")
    job = (await workloads.create_workload(domain, actor, body)).workload
    (run,) = await runs_of(domain, job.id)
    await lifecycle.mark_run_started(domain, run.id, task_id="t", started_at=datetime.now(UTC))
    await secrets.set_secret(domain, actor, job.id, key="TOKEN", value="v2")
    async with domain.store.reading() as session:
        workload = await session.get(Workload, job.id)
    assert workload is not None and workload.generation == 2
    # Jobs are not rolled: the running task (generation 1) keeps running to its end.
    target = await running_target(domain, actor, job.id, None, wait_seconds=0)
    assert target.run.id == run.id


async def test_nothing_active_is_refused_at_once(domain: Domain, actor: Actor) -> None:
    body = WorkloadCreate(name="sched", type="schedule", image="img", schedule_expr="0 0 1 1 *")
    sched = (await workloads.create_workload(domain, actor, body)).workload
    with pytest.raises(Conflict, match="no task of workload") as refused:
        await running_target(domain, actor, sched.id, None)
    assert not isinstance(refused.value, RollingOut)
