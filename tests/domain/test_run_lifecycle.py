"""Run results are written once, with usage, and service crashes back off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from berth.domain import lifecycle, workloads
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.schemas.workloads import WorkloadCreate
from berth.store.models import Run, User, Workload


async def only_run(domain: Domain, workload_id: str) -> Run:
    async with domain.store.reading() as session:
        runs = list(await session.scalars(select(Run).where(Run.workload_id == workload_id)))
    assert len(runs) == 1
    return runs[0]


async def test_a_result_is_recorded_once_with_its_usage(domain: Domain, actor: Actor) -> None:
    body = WorkloadCreate(name="j", type="job", image="img", cpu=1, memory_mb=1024)
    job = (await workloads.create_workload(domain, actor, body)).workload
    run = await only_run(domain, job.id)
    start = datetime.now(UTC)
    assert await lifecycle.mark_run_started(domain, run.id, task_id="t1", started_at=start)
    assert not await lifecycle.mark_run_started(domain, run.id, task_id="t2", started_at=start)

    result = lifecycle.RunResult(exit_code=0, finished_at=start + timedelta(seconds=30))
    assert await lifecycle.record_run_result(domain, run.id, result, backoff_max=60)
    again = lifecycle.RunResult(exit_code=9, finished_at=start + timedelta(seconds=90))
    assert not await lifecycle.record_run_result(domain, run.id, again, backoff_max=60)

    done = await only_run(domain, job.id)
    assert (done.status, done.exit_code, done.task_id) == ("succeeded", 0, "t1")
    assert done.vcpu_seconds == 30.0 and done.gb_seconds == 30.0
    async with domain.store.reading() as session:
        user = await session.get(User, actor.user_id)
    assert user is not None
    assert user.credits < domain.kit_defaults.credits


async def test_a_crashed_service_task_backs_the_service_off(domain: Domain, actor: Actor) -> None:
    body = WorkloadCreate(name="s", type="service", image="img")
    svc = (await workloads.create_workload(domain, actor, body)).workload
    await lifecycle.converge_desired_runs(domain, datetime.now(UTC))
    run = await only_run(domain, svc.id)
    start = datetime.now(UTC)
    await lifecycle.mark_run_started(domain, run.id, task_id="t", started_at=start)
    crash = lifecycle.RunResult(exit_code=1, finished_at=start + timedelta(seconds=1))
    await lifecycle.record_run_result(domain, run.id, crash, backoff_max=60)

    async with domain.store.reading() as session:
        workload = await session.get(Workload, svc.id)
    assert workload is not None and workload.backoff_until is not None
    assert workload.consecutive_failures == 1
    await lifecycle.converge_desired_runs(domain, start + timedelta(seconds=1, milliseconds=500))
    assert (await only_run(domain, svc.id)).id == run.id  # still backing off: no new run
    await lifecycle.refresh_workload_statuses(
        domain, start + timedelta(seconds=1, milliseconds=500), [svc.id]
    )
    view = await workloads.get_workload(domain, actor, svc.id)
    assert view.workload.status == "crash_loop"


async def test_an_out_of_memory_kill_is_named_as_the_reason(domain: Domain, actor: Actor) -> None:
    body = WorkloadCreate(name="j", type="job", image="img", memory_mb=64)
    job = (await workloads.create_workload(domain, actor, body)).workload
    run = await only_run(domain, job.id)
    now = datetime.now(UTC)
    await lifecycle.mark_run_started(domain, run.id, task_id="t", started_at=now)
    oom = lifecycle.RunResult(exit_code=137, finished_at=now, oom_killed=True)
    await lifecycle.record_run_result(domain, run.id, oom, backoff_max=60)
    done = await only_run(domain, job.id)
    assert done.status == "failed"
    assert done.status_reason == "out of memory: the task exceeded its 64 MB limit"


async def test_the_engines_start_stamp_is_recorded_and_a_short_run_billed_a_second(
    domain: Domain, actor: Actor
) -> None:
    body = WorkloadCreate(name="j", type="job", image="img", cpu=0.5, memory_mb=512)
    job = (await workloads.create_workload(domain, actor, body)).workload
    run = await only_run(domain, job.id)
    seen_running = datetime.now(UTC)
    await lifecycle.mark_run_started(domain, run.id, task_id="t", started_at=seen_running)
    # The exit's inspect has the engine's final stamps: a start a little earlier.
    engine_start = seen_running - timedelta(microseconds=400)
    result = lifecycle.RunResult(exit_code=0, started_at=engine_start, finished_at=seen_running)
    await lifecycle.record_run_result(domain, run.id, result, backoff_max=60)

    done = await only_run(domain, job.id)
    assert (done.started_at, done.finished_at) == (engine_start, seen_running)
    assert (done.vcpu_seconds, done.gb_seconds) == (0.5, 0.5)
    async with domain.store.reading() as session:
        user = await session.get(User, actor.user_id)
    assert user is not None
    assert domain.kit_defaults.credits - user.credits == pytest.approx(done.credits)
    assert done.credits == pytest.approx(
        0.5 * domain.pricing.per_vcpu_second + 0.5 * domain.pricing.per_gb_second
    )
