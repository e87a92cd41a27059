"""The reconciler's targeted paths, against the real engine and a real store, with no pass.

A changed workload's runs are launched from its change alone, and a task's exit is recorded
from the engine's `die` event alone: these tests never run a reconcile pass (its interval is
an hour and nothing calls it), so only those paths can do the work they check. The engine's
events reach the reconciler as they do in the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from berth.config import Settings
from berth.control.reconciler import Reconciler
from berth.domain import accounts, labels, workloads
from berth.domain.auth import Actor, Principal
from berth.domain.context import Domain
from berth.runtime.base import TaskEvent, TaskId, TaskSpec, TaskStatus
from berth.runtime.docker import DockerRuntime
from berth.schemas.workloads import WorkloadCreate
from berth.server.bootstrap import open_domain
from berth.store.models import Run
from berth.testing.waiting import poll
from tests.support.drivers import IMAGE, SOCKET

pytestmark = pytest.mark.engine


@dataclass
class Controller:
    domain: Domain
    runtime: DockerRuntime
    reconciler: Reconciler
    actor: Actor

    async def runs(self, workload_id: str) -> list[Run]:
        async with self.domain.store.reading() as session:
            return list(await session.scalars(select(Run).where(Run.workload_id == workload_id)))

    async def only_run_when(self, workload_id: str, status: str) -> Run:
        async def reached() -> Run | None:
            runs = await self.runs(workload_id)
            return runs[0] if len(runs) == 1 and runs[0].status == status else None

        return await poll(reached, within=30)

    async def task_removed(self, run: Run) -> None:
        """Wait until the run's task is gone (removed after its output was archived)."""
        assert run.task_id is not None

        async def gone() -> bool | None:
            return await self.runtime.inspect(TaskId(run.task_id or "")) is None or None

        await poll(gone, within=30)


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[Controller]:
    runtime = DockerRuntime(SOCKET)
    domain = await open_domain(Settings(data_dir=tmp_path / "data"), runtime=runtime)
    reconciler = Reconciler(
        domain,
        runtime,
        instance_id=domain.instance_id,
        interval=3600,
        stop_grace=1,
        backoff_max=60,
        log_max_bytes=1 << 20,
    )
    user, _kit = await accounts.create_user(domain, email="fast@example.com")
    principal = Principal(
        company_id=user.company_id, user_id=user.id, is_operator=False, kind="api_key"
    )
    actor = Actor(user_id=user.id, company_id=user.company_id, principal=principal)
    try:
        yield Controller(domain, runtime, reconciler, actor)
    finally:
        await reconciler.cancel_inflight()
        selector = labels.instance_selector(domain.instance_id)
        for task in await runtime.list_tasks(selector):
            await runtime.remove(task.task_id)
        await runtime.remove_networks(selector)
        await runtime.close()
        await domain.store.close()


@contextlib.asynccontextmanager
async def engine_events_to(controller: Controller) -> AsyncIterator[list[TaskEvent]]:
    """Feed the engine's events for the instance's tasks to the reconciler (as the server's
    watcher does); yields the events seen so far."""
    seen: list[TaskEvent] = []

    async def relay() -> None:
        selector = labels.instance_selector(controller.domain.instance_id)
        async for event in controller.runtime.events(selector):
            seen.append(event)
            controller.reconciler.engine_event(event)

    task = asyncio.create_task(relay())
    try:
        # Live once the event of a task made for the purpose comes through.
        probe = await controller.runtime.create(
            TaskSpec(
                name=f"berth-{controller.domain.instance_id}-probe",
                image=IMAGE,
                command=["true"],
                env={},
                labels=labels.instance_selector(controller.domain.instance_id),
                cpu=0.1,
                memory_mb=16,
            )
        )

        async def probed() -> bool | None:
            return any(event.task_id == probe.task_id for event in seen) or None

        await poll(probed, within=10)
        await controller.runtime.remove(probe.task_id)
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_created_job_runs_and_its_result_is_recorded_from_its_change_alone(
    controller: Controller,
) -> None:
    body = WorkloadCreate(name="once", type="job", image=IMAGE, command="echo hello; exit 3")
    job = (await workloads.create_workload(controller.domain, controller.actor, body)).workload

    async with engine_events_to(controller):
        controller.reconciler.workload_changed(job.id)
        run = await controller.only_run_when(job.id, "failed")
    assert (run.exit_code, run.status_reason) == (3, "exited with code 3")
    assert run.started_at is not None and run.finished_at is not None
    await controller.task_removed(run)
    assert [line.message for line in controller.domain.logs.read(run.id)] == ["hello"]


async def test_a_created_service_is_planned_and_started_from_its_change_alone(
    controller: Controller,
) -> None:
    body = WorkloadCreate(name="web", type="service", image=IMAGE, command="exec sleep 600")
    service = (await workloads.create_workload(controller.domain, controller.actor, body)).workload
    assert await controller.runs(service.id) == []  # replicas are planned by the controller

    async with engine_events_to(controller):
        controller.reconciler.workload_changed(service.id)
        run = await controller.only_run_when(service.id, "running")
    assert run.task_id is not None
    task = await controller.runtime.inspect(TaskId(run.task_id))
    assert task is not None and task.status is TaskStatus.RUNNING
    assert task.labels[labels.RUN] == run.id


async def test_a_task_exit_is_recorded_from_the_engines_die_event_alone(
    controller: Controller,
) -> None:
    body = WorkloadCreate(name="later", type="job", image=IMAGE, command="sleep 2; exit 4")
    job = (await workloads.create_workload(controller.domain, controller.actor, body)).workload
    async with engine_events_to(controller) as seen:
        controller.reconciler.workload_changed(job.id)
        running = await controller.only_run_when(job.id, "running")
        run = await controller.only_run_when(job.id, "failed")
    assert run.id == running.id
    assert (run.exit_code, run.status_reason) == (4, "exited with code 4")
    assert any(e.action == "die" and e.labels.get(labels.RUN) == run.id for e in seen)
    await controller.task_removed(run)


async def test_a_clean_exit_is_recorded_as_the_die_event_tells_it(controller: Controller) -> None:
    body = WorkloadCreate(name="clean", type="job", image=IMAGE, command="echo done")
    job = (await workloads.create_workload(controller.domain, controller.actor, body)).workload
    async with engine_events_to(controller) as seen:
        controller.reconciler.workload_changed(job.id)
        run = await controller.only_run_when(job.id, "succeeded")
        await controller.task_removed(run)
    (death,) = [e for e in seen if e.action == "die" and e.labels.get(labels.RUN) == run.id]
    assert run.exit_code == 0 == death.exit_code
    # The engine's time of the event, not an inspect's FinishedAt (tens of ms earlier).
    assert run.finished_at == death.at
    assert run.started_at is not None and run.started_at <= run.finished_at
    assert [line.message for line in controller.domain.logs.read(run.id)] == ["done"]
