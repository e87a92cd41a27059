"""Services under the reconciler, one pass at a time: launch, crash back-off, scaling,
secret rolls, tasks lost behind berth's back, and an engine that goes away."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from berth.control import reconciler
from berth.domain import secrets, workloads
from berth.domain.auth import Actor
from berth.runtime.base import TaskStatus
from berth.schemas.workloads import WorkloadCreate
from tests.fast.platform import Platform
from tests.support.statements import counted_statements

IMAGE = "berth/busybox:latest"
WRITING = re.compile(r"^\s*(BEGIN IMMEDIATE|INSERT|UPDATE|DELETE)|FOR UPDATE", re.IGNORECASE)
"""A statement of a write transaction (SQLite's writers begin IMMEDIATE) or a row lock."""


async def create_service(platform: Platform, actor: Actor, **fields: object) -> str:
    body = WorkloadCreate.model_validate(
        {"name": "web", "type": "service", "image": IMAGE, **fields}
    )
    view = await workloads.create_workload(platform.domain, actor, body)
    return view.workload.id


async def test_a_new_service_runs_its_task_after_one_pass(platform: Platform, actor: Actor) -> None:
    service = await create_service(platform, actor, env={"GREETING": "hi"})
    assert platform.running_tasks() == []

    await platform.reconcile()

    (run,) = await platform.runs(service)
    assert (run.status, run.slot, run.generation) == ("running", 0, 1)
    task = platform.task_of(run)
    assert task.status is TaskStatus.RUNNING
    assert task.spec.env["GREETING"] == "hi"
    assert task.spec.labels["dev.berth.run"] == run.id
    assert run.started_at == platform.clock.now()
    assert (await platform.workload(service)).status == "running"


async def test_a_crashed_task_is_replaced_only_once_its_back_off_ends(
    platform: Platform, actor: Actor
) -> None:
    service = await create_service(platform, actor)
    await platform.reconcile()
    (first,) = await platform.runs(service)
    crashed_at = platform.clock.advance(5)
    platform.runtime.finish(first.task_id or "", exit_code=1)

    await platform.reconcile()
    crashed = await platform.run(first.id)
    assert (crashed.status, crashed.exit_code) == ("failed", 1)
    workload = await platform.workload(service)
    assert workload.consecutive_failures == 1
    assert workload.backoff_until == crashed_at + timedelta(seconds=1)
    assert workload.status == "crash_loop"

    platform.clock.advance(0.5)
    await platform.reconcile()
    assert [r.id for r in await platform.runs(service)] == [first.id]  # still backing off

    platform.clock.advance(0.5)
    await platform.reconcile()
    runs = await platform.runs(service)
    assert [r.status for r in runs] == ["failed", "running"]

    # A second crash soon after doubles the wait.
    second_crash = platform.clock.advance(1)
    platform.runtime.finish(runs[1].task_id or "", exit_code=2)
    await platform.reconcile()
    workload = await platform.workload(service)
    assert workload.consecutive_failures == 2
    assert workload.backoff_until == second_crash + timedelta(seconds=2)


async def test_a_task_that_ran_a_minute_before_crashing_backs_off_one_second_again(
    platform: Platform, actor: Actor
) -> None:
    service = await create_service(platform, actor)
    await platform.reconcile()
    (first,) = await platform.runs(service)
    platform.runtime.finish(first.task_id or "", exit_code=1)
    await platform.reconcile()
    platform.clock.advance(1)
    await platform.reconcile()
    second = (await platform.runs(service))[-1]
    assert second.status == "running"

    crashed_at = platform.clock.advance(60)
    platform.runtime.finish(second.task_id or "", exit_code=1)
    await platform.reconcile()
    workload = await platform.workload(service)
    assert workload.consecutive_failures == 1
    assert workload.backoff_until == crashed_at + timedelta(seconds=1)


async def test_scaling_up_fills_new_slots_and_scaling_down_stops_the_highest(
    platform: Platform, actor: Actor
) -> None:
    service = await create_service(platform, actor)
    await platform.reconcile()
    await workloads.scale_workload(platform.domain, actor, service, count=3)
    await platform.reconcile()
    runs = await platform.runs(service)
    assert [(r.slot, r.status) for r in runs] == [(0, "running"), (1, "running"), (2, "running")]
    assert len(platform.running_tasks()) == 3

    await workloads.scale_workload(platform.domain, actor, service, count=1)
    await platform.reconcile()  # stops the tasks of slots 1 and 2
    assert [t.spec.labels["dev.berth.run"] for t in platform.running_tasks()] == [runs[0].id]
    await platform.reconcile()  # records their end and removes them
    runs = await platform.runs(service)
    assert [(r.slot, r.status, r.status_reason) for r in runs] == [
        (0, "running", None),
        (1, "stopped", "stopped (scaled down)"),
        (2, "stopped", "stopped (scaled down)"),
    ]
    assert len(platform.runtime.tasks()) == 1
    assert (await platform.workload(service)).status == "running"


async def test_a_secret_change_starts_the_new_task_before_stopping_the_old(
    platform: Platform, actor: Actor
) -> None:
    service = await create_service(platform, actor)
    await platform.reconcile()
    (old,) = await platform.runs(service)

    await secrets.set_secret(platform.domain, actor, service, key="TOKEN", value="s3cret")
    await platform.reconcile()
    old_now, new = await platform.runs(service)
    assert (new.generation, new.status) == (2, "running")
    assert platform.task_of(new).spec.env["TOKEN"] == "s3cret"
    assert (old_now.id, old_now.status, old_now.stop_requested) == (old.id, "running", False)
    assert platform.task_of(old_now).status is TaskStatus.RUNNING  # both serve for a moment

    await platform.reconcile()  # the new one runs: the old one is asked to stop
    assert platform.task_of(old_now).status is TaskStatus.EXITED
    await platform.reconcile()
    old_done = await platform.run(old.id)
    assert (old_done.status, old_done.status_reason) == ("stopped", "stopped (replaced)")
    assert [t.spec.labels["dev.berth.run"] for t in platform.runtime.tasks()] == [new.id]


async def test_a_task_removed_behind_berths_back_fails_its_run_and_is_replaced(
    platform: Platform, actor: Actor
) -> None:
    service = await create_service(platform, actor)
    await platform.reconcile()
    (lost,) = await platform.runs(service)
    platform.runtime.vanish(lost.task_id or "")

    await platform.reconcile()
    failed = await platform.run(lost.id)
    assert failed.status == "failed"
    assert failed.status_reason == "the task's container disappeared from the engine"
    platform.clock.advance(1)
    await platform.reconcile()
    assert [r.status for r in await platform.runs(service)] == ["failed", "running"]


async def test_while_the_engine_is_away_nothing_is_recorded_and_it_catches_up_after(
    platform: Platform, actor: Actor
) -> None:
    service = await create_service(platform, actor)
    await platform.reconcile()
    (run,) = await platform.runs(service)
    platform.runtime.available = False

    await platform.reconcile()
    assert platform.reconciler.engine_error is not None
    assert "unavailable" in platform.reconciler.engine_error
    assert (await platform.run(run.id)).status == "running"

    platform.runtime.available = True
    platform.runtime.finish(run.task_id or "", exit_code=0)
    await platform.reconcile()
    assert platform.reconciler.engine_error is None
    assert (await platform.run(run.id)).status == "succeeded"
    # A service's task that ends unasked is a crash, even with code 0.
    assert (await platform.workload(service)).consecutive_failures == 1


async def test_stopping_a_service_stops_its_task_and_starting_it_runs_a_new_one(
    platform: Platform, actor: Actor
) -> None:
    service = await create_service(platform, actor)
    await platform.reconcile()
    await workloads.stop_workload(platform.domain, actor, service)
    assert (await platform.workload(service)).status == "stopping"
    await platform.reconcile()
    await platform.reconcile()
    (run,) = await platform.runs(service)
    assert (run.status, run.status_reason) == ("stopped", "stopped (stopped)")
    assert (await platform.workload(service)).status == "stopped"
    assert platform.runtime.tasks() == []

    await workloads.start_workload(platform.domain, actor, service)
    await platform.reconcile()
    assert [r.status for r in await platform.runs(service)] == ["stopped", "running"]


async def test_a_change_that_leaves_a_stop_to_do_asks_for_a_pass(
    platform: Platform, actor: Actor
) -> None:
    service = await create_service(platform, actor)
    await platform.reconcile()
    await workloads.stop_workload(platform.domain, actor, service)
    platform.reconciler.workload_changed(service)
    await platform.reconciler.settle()
    assert platform.reconciler.pass_requested


async def test_a_rolls_new_task_starting_asks_for_the_pass_that_stops_the_old(
    platform: Platform, actor: Actor
) -> None:
    # The change's own launch starts the new task; the old one must not wait for the
    # periodic pass (it may be minutes away) to be replaced.
    service = await create_service(platform, actor)
    await platform.reconcile()
    await secrets.set_secret(platform.domain, actor, service, key="TOKEN", value="s3cret")
    platform.reconciler.workload_changed(service)
    await platform.reconciler.settle()
    old, new = await platform.runs(service)
    assert (new.generation, new.status) == (2, "running")
    assert old.status == "running"
    assert platform.reconciler.pass_requested


async def test_each_full_pass_is_logged_with_what_it_saw_and_how_long_it_took(
    platform: Platform,
    actor: Actor,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await create_service(platform, actor)
    await create_service(platform, actor, name="other", replicas=0)

    with caplog.at_level(logging.DEBUG, logger="berth.reconciler"):
        await platform.reconcile()  # launches the one task
        await platform.reconcile()

    lines = [r for r in caplog.records if r.getMessage().startswith("full pass: ")]
    assert len(lines) == 2
    assert lines[0].levelno == logging.DEBUG  # a fast pass: below the default level
    found = re.fullmatch(
        r"full pass: 1 active runs, 1 workloads read, 1 tasks in ([\d.]+) ms"
        r" \(listing the engine's tasks ([\d.]+) ms of it\)",
        lines[1].getMessage(),
    )
    assert found is not None, lines[1].getMessage()
    assert 0 <= float(found.group(2)) <= float(found.group(1))

    # A slow pass (one that held up the API's answers) is logged at the default level.
    monkeypatch.setattr(reconciler, "SLOW_PASS", 0.0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="berth.reconciler"):
        await platform.reconcile()
    assert [r.levelno for r in caplog.records if "full pass" in r.getMessage()] == [logging.INFO]


async def test_a_service_created_with_no_replicas_is_stopped_at_once_and_planning_it_writes_nothing(
    platform: Platform, actor: Actor
) -> None:
    body = WorkloadCreate.model_validate(
        {"name": "asleep", "type": "service", "image": IMAGE, "replicas": 0}
    )
    view = await workloads.create_workload(platform.domain, actor, body)
    assert (view.workload.status, view.workload.status_reason) == (
        "stopped",
        "scaled to zero: a request or POST .../start wakes it",
    )
    written: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if WRITING.search(statement):
            written.append(statement)

    writer = platform.domain.store.engine.sync_engine
    event.listen(writer, "before_cursor_execute", note)
    try:
        platform.reconciler.workload_changed(view.workload.id)
        await platform.reconciler.settle()
    finally:
        event.remove(writer, "before_cursor_execute", note)
    assert written == []  # no plan to write, no status to correct: no write, no lock
    assert (await platform.workload(view.workload.id)).status == "stopped"


async def test_a_change_that_plans_launches_and_derives_nothing_costs_the_reconciler_one_read(
    platform: Platform, actor: Actor
) -> None:
    body = WorkloadCreate.model_validate(
        {"name": "asleep", "type": "service", "image": IMAGE, "replicas": 0}
    )
    service = (await workloads.create_workload(platform.domain, actor, body)).workload.id
    await platform.reconciler.settle()
    await secrets.set_secret(platform.domain, actor, service, key="TOKEN", value="x")
    await platform.reconciler.settle()
    async with counted_statements(platform.domain.store) as statements:
        platform.reconciler.workload_changed(service)
        await platform.reconciler.settle()
    # The workload, its active runs and the run its status speaks of; nothing else.
    assert len(statements) == 3, statements
    assert all(statement.lstrip().upper().startswith("SELECT") for statement in statements)
