"""Jobs under the reconciler, one pass at a time: the exit code, the output and the usage
recorded, timeouts, the kernel's OOM kill, and a run that cannot start."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from berth.domain import accounts, ledger, workloads
from berth.domain.auth import Actor
from berth.domain.billing import MINIMUM_BILLED_SECONDS
from berth.domain.lifecycle import meter_running_runs
from berth.schemas.workloads import WorkloadCreate
from berth.store.models import CreditEntry, Run, User
from tests.fast.platform import Platform

IMAGE = "berth/busybox:latest"


async def create_job(platform: Platform, actor: Actor, **fields: object) -> str:
    body = WorkloadCreate.model_validate({"name": "job", "type": "job", "image": IMAGE, **fields})
    return (await workloads.create_workload(platform.domain, actor, body)).workload.id


async def test_a_job_records_its_exit_code_output_and_at_least_a_seconds_usage(
    platform: Platform, actor: Actor
) -> None:
    before = await platform.credits(actor.user_id)
    job = await create_job(
        platform, actor, command="echo hello; echo oops >&2; exit 3", cpu=2, memory_mb=512
    )

    await platform.reconcile()  # launched, ended at once, recorded, archived, removed

    (run,) = await platform.runs(job)
    assert (run.status, run.exit_code) == ("failed", 3)
    assert run.status_reason == "exited with code 3"
    assert run.started_at == run.finished_at == platform.clock.now()
    assert run.logs_archived
    assert [(line.stream, line.message) for line in platform.domain.logs.read(run.id)] == [
        ("stdout", "hello"),
        ("stderr", "oops"),
    ]
    assert platform.runtime.tasks() == []
    # It ran no time at all, and is billed the minimum: 2 vCPUs and 0.5 GiB for one second.
    assert (run.vcpu_seconds, run.gb_seconds) == (2 * MINIMUM_BILLED_SECONDS, 0.5)
    pricing = platform.domain.pricing
    charged = 2 * pricing.per_vcpu_second + 0.5 * pricing.per_gb_second
    assert run.credits == pytest.approx(charged)
    assert await platform.credits(actor.user_id) == pytest.approx(before - charged)
    assert (await platform.workload(job)).status == "failed"


async def test_a_job_is_billed_its_running_time_on_the_engines_clock(
    platform: Platform, actor: Actor
) -> None:
    job = await create_job(platform, actor, command="sleep 30; echo done", cpu=1, memory_mb=1024)
    await platform.reconcile()
    (run,) = await platform.runs(job)
    assert run.status == "running"

    platform.clock.advance(29)
    await platform.reconcile()
    assert (await platform.run(run.id)).status == "running"

    platform.clock.advance(5)  # the task ended 30 s after it started, seen 4 s later
    await platform.reconcile()
    done = await platform.run(run.id)
    assert (done.status, done.exit_code) == ("succeeded", 0)
    assert done.started_at is not None and done.finished_at is not None
    assert (done.finished_at - done.started_at).total_seconds() == 30
    assert (done.vcpu_seconds, done.gb_seconds) == (30.0, 30.0)
    assert [line.message for line in platform.domain.logs.read(run.id)] == ["done"]


async def test_the_meter_charges_a_running_task_up_to_now_and_the_end_settles_it(
    platform: Platform, actor: Actor
) -> None:
    before = await platform.credits(actor.user_id)
    pricing = platform.domain.pricing
    per_second = pricing.per_vcpu_second + pricing.per_gb_second  # 1 vCPU, 1 GiB
    job = await create_job(platform, actor, command="sleep 30", cpu=1, memory_mb=1024)
    await platform.reconcile()
    (run,) = await platform.runs(job)

    platform.clock.advance(10)
    await meter_running_runs(platform.domain, platform.clock.now())
    metered = await platform.run(run.id)
    assert (metered.vcpu_seconds, metered.metered_until) == (10.0, platform.clock.now())
    assert await platform.credits(actor.user_id) == pytest.approx(before - 10 * per_second)

    platform.clock.advance(25)  # it ended at 30 s; the meter ticks once more before the pass
    await meter_running_runs(platform.domain, platform.clock.now())
    await platform.reconcile()
    done = await platform.run(run.id)
    assert (done.status, done.vcpu_seconds) == ("succeeded", 30.0)  # the 5 s past it refunded
    assert await platform.credits(actor.user_id) == pytest.approx(before - 30 * per_second)


async def test_a_job_past_its_timeout_is_stopped_and_recorded_timed_out(
    platform: Platform, actor: Actor
) -> None:
    job = await create_job(platform, actor, command=["sleep", "600"], timeout_seconds=10)
    await platform.reconcile()
    platform.clock.advance(10)
    await platform.reconcile()
    (run,) = await platform.runs(job)
    assert (run.status, run.stop_requested) == ("running", False)  # not past it yet

    platform.clock.advance(1)
    await platform.reconcile()  # asks the task to stop
    await platform.reconcile()  # records its end
    done = await platform.run(run.id)
    assert (done.status, done.status_reason) == ("timed_out", "stopped after timeout_seconds")


async def test_an_out_of_memory_kill_is_the_reason_of_the_failure(
    platform: Platform, actor: Actor
) -> None:
    job = await create_job(platform, actor, command=["sleep", "600"], memory_mb=64)
    await platform.reconcile()
    (run,) = await platform.runs(job)
    platform.runtime.oom_kill(run.task_id or "")
    await platform.reconcile()
    done = await platform.run(run.id)
    assert (done.status, done.exit_code) == ("failed", 137)
    assert done.status_reason == "out of memory: the task exceeded its 64 MB limit"


async def test_a_run_whose_image_is_missing_fails_with_the_engines_reason(
    platform: Platform, actor: Actor
) -> None:
    job = await create_job(platform, actor, image="example.org/nothing:1")
    await platform.reconcile()
    (run,) = await platform.runs(job)
    assert run.status == "failed"
    assert run.status_reason is not None and "example.org/nothing:1" in run.status_reason
    assert (run.vcpu_seconds, run.credits) == (0.0, 0.0)  # never started: nothing billed


async def test_a_manual_run_of_a_job_runs_again(platform: Platform, actor: Actor) -> None:
    job = await create_job(platform, actor, command="exit 0")
    await platform.reconcile()
    platform.clock.advance(60)
    await workloads.trigger_run(platform.domain, actor, job)
    await platform.reconcile()
    runs = await platform.runs(job)
    assert [(r.trigger, r.status) for r in runs] == [
        ("create", "succeeded"),
        ("manual", "succeeded"),
    ]
    assert runs[1].created_at == platform.clock.now()


async def test_the_balance_is_the_ledgers_sum_after_runs_ticks_refunds_and_grants(
    platform: Platform, actor: Actor
) -> None:
    """Every change of a balance is a ledger entry written with it: after jobs metered by
    ticks, settled (with a refund of ticks past the end), grants and an adjustment, the
    balance equals the sum of the ledger, and each run's cost the sum of its entries."""
    domain = platform.domain
    jobs = [
        await create_job(platform, actor, name=f"j{n}", command=f"sleep {n + 3}", cpu=0.5)
        for n in range(3)
    ]
    await platform.reconcile()
    for _ in range(4):
        platform.clock.advance(2.5)
        await meter_running_runs(domain, platform.clock.now())
        await accounts.update_user(domain, actor.user_id, add_credits=0.125)
    await platform.reconcile()
    await accounts.update_user(domain, actor.user_id, credits=42.5)
    platform.clock.advance(1)
    await workloads.trigger_run(domain, actor, jobs[0])
    await platform.reconcile()
    platform.clock.advance(5)
    await platform.reconcile()

    async with domain.store.reading() as session:
        user = await session.get(User, actor.user_id)
        assert user is not None
        assert await ledger.ledger_sum(session, actor.user_id) == user.credits_micro
        for job in jobs:
            for run in await session.scalars(select(Run).where(Run.workload_id == job)):
                assert run.status == "succeeded" and run.credits_micro > 0
                charged = await session.scalar(
                    select(func.sum(CreditEntry.amount_micro)).where(CreditEntry.run_id == run.id)
                )
                assert -charged == run.credits_micro
    assert user.credits_micro < 42_500_000  # the last run was charged after the adjustment
