"""Schedules on the manual clock: a fire at its time and not before, a fire skipped (and
said) while the previous run still runs, and the scheduler loop reading berth's clock."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from berth.control import reconciler
from berth.control.loops import run_scheduler
from berth.domain import workloads
from berth.domain.auth import Actor
from berth.domain.scheduling import fire_due_schedules
from berth.schemas.workloads import WorkloadCreate
from berth.store.models import Workload
from tests.fast.platform import Platform

IMAGE = "berth/busybox:latest"


def at(minute: int, second: int = 0) -> datetime:
    """A moment of the manual clock's first hour (it starts at 2030-01-01 00:00 UTC)."""
    return datetime(2030, 1, 1, 0, minute, second, tzinfo=UTC)


async def create_schedule(platform: Platform, actor: Actor, command: str) -> str:
    body = WorkloadCreate(
        name="every-5", type="schedule", image=IMAGE, schedule_expr="*/5 * * * *", command=command
    )
    return (await workloads.create_workload(platform.domain, actor, body)).workload.id


async def fire(platform: Platform) -> None:
    await fire_due_schedules(platform.domain, platform.clock.now())


async def test_a_schedule_fires_at_its_time_and_not_before(
    platform: Platform, actor: Actor
) -> None:
    schedule = await create_schedule(platform, actor, "echo tick")
    assert (await platform.workload(schedule)).next_run_at == at(5)

    platform.clock.set(at(4, 59))
    await fire(platform)
    assert await platform.runs(schedule) == []

    platform.clock.set(at(5))
    await fire(platform)
    (run,) = await platform.runs(schedule)
    assert (run.trigger, run.created_at) == ("schedule", at(5))
    assert (await platform.workload(schedule)).next_run_at == at(10)
    await platform.reconcile()
    assert (await platform.run(run.id)).status == "succeeded"
    assert [line.message for line in platform.domain.logs.read(run.id)] == ["tick"]


async def test_a_fire_while_the_previous_run_still_runs_is_skipped_and_said(
    platform: Platform, actor: Actor
) -> None:
    schedule = await create_schedule(platform, actor, "sleep 420")
    platform.clock.set(at(5))
    await fire(platform)
    await platform.reconcile()
    (first,) = await platform.runs(schedule)
    assert first.status == "running"

    platform.clock.set(at(10))
    await fire(platform)
    assert [r.id for r in await platform.runs(schedule)] == [first.id]
    workload = await platform.workload(schedule)
    assert workload.status_reason == (
        "skipped the fire at 2030-01-01 00:10:00Z: the previous run still runs"
    )
    assert workload.next_run_at == at(15)

    platform.clock.set(at(15))  # the first run ended at 00:12
    await platform.reconcile()
    assert (await platform.run(first.id)).finished_at == at(12)
    await fire(platform)
    assert [r.created_at for r in await platform.runs(schedule)] == [at(5), at(15)]
    assert (await platform.workload(schedule)).status_reason is None


async def test_the_scheduler_loop_fires_by_berths_clock(platform: Platform, actor: Actor) -> None:
    schedule = await create_schedule(platform, actor, "true")
    platform.clock.set(at(5))
    changes = platform.domain.bus.subscribe()
    loop = asyncio.create_task(run_scheduler(platform.domain, asyncio.Event()))
    try:
        async with asyncio.timeout(10):
            async for event in changes:
                if event.kind == "workload.changed" and event.workload_id == schedule:
                    break
    finally:
        platform.domain.bus.unsubscribe(changes)
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    (run,) = await platform.runs(schedule)
    assert run.created_at == at(5)


async def test_creating_a_schedule_asks_for_no_reconcile_pass(
    platform: Platform, actor: Actor
) -> None:
    # A full pass reads every workload: one per create made n creates cost n squared.
    schedule = await create_schedule(platform, actor, "echo tick")
    platform.reconciler.workload_changed(schedule)
    await platform.reconciler.settle()
    assert not platform.reconciler.pass_requested


async def test_passes_sweep_statuses_a_slice_each_and_correct_every_stale_one(
    platform: Platform, actor: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconciler, "STATUS_SWEEP", 2)
    for n in range(5):
        body = WorkloadCreate(
            name=f"yearly-{n}", type="schedule", image=IMAGE, schedule_expr="0 0 1 1 *"
        )
        await workloads.create_workload(platform.domain, actor, body)
    async with platform.domain.store.transaction() as session:
        await session.execute(update(Workload).values(status="stale"))

    async def stale() -> int:
        async with platform.domain.store.reading() as session:
            rows = await session.scalars(select(Workload.id).where(Workload.status == "stale"))
            return len(list(rows))

    left = []
    for _ in range(3):
        await platform.reconcile()
        left.append(await stale())
    assert left == [3, 1, 0]  # a pass re-derives two; the third pass finishes the sweep
