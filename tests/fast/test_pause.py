"""Pause and resume on the manual clock: a paused service's task is frozen, its run stays
running (the reconciler leaves it be), the meter charges its memory alone, and an exec
resumes it first. An engine without a freezer refuses a pause, saying why."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from berth.domain import execution, lifecycle, pausing, workloads
from berth.domain.auth import Actor
from berth.domain.errors import Conflict
from berth.gateway.http.route_table import Route, RouteTable, TaskPort, load_routes
from berth.runtime.base import Pausing, RuntimeDriverError, TaskId, TaskStatus
from berth.runtime.memory import MemoryRuntime
from berth.schemas.workloads import WorkloadCreate
from tests.fast.platform import Platform

IMAGE = "berth/busybox:latest"


async def running_service(platform: Platform, actor: Actor) -> str:
    body = WorkloadCreate(name="frozen", type="service", image=IMAGE, command="sleep 100000")
    service = (await workloads.create_workload(platform.domain, actor, body)).workload.id
    await platform.reconcile()
    assert (await platform.workload(service)).status == "running"
    return service


async def test_a_paused_service_is_frozen_and_stays_so_through_passes(
    platform: Platform, actor: Actor
) -> None:
    service = await running_service(platform, actor)
    await pausing.pause(platform.domain, actor, service, kind="service")
    (run,) = await platform.runs(service)
    assert platform.task_of(run).paused and run.paused_at == platform.clock.now()
    workload = await platform.workload(service)
    assert workload.status == "paused"
    assert f"POST /v1/compute/{service}/resume" in (workload.status_reason or "")

    platform.clock.advance(30)
    for _ in range(3):
        await platform.reconcile()
    (same,) = await platform.runs(service)
    assert (same.id, same.status, same.paused_at) == (run.id, "running", run.paused_at)
    assert platform.task_of(same).status is TaskStatus.RUNNING and platform.task_of(same).paused

    # Pausing again changes nothing; resuming thaws it and counts the pause.
    await pausing.pause(platform.domain, actor, service, kind="service")
    assert (await platform.run(run.id)).paused_at == run.paused_at
    platform.clock.advance(10)
    await pausing.resume(platform.domain, actor, service, kind="service")
    resumed = await platform.run(run.id)
    assert (resumed.paused_at, resumed.paused_seconds) == (None, 40.0)
    assert not platform.task_of(resumed).paused
    assert (await platform.workload(service)).status == "running"
    await pausing.resume(platform.domain, actor, service, kind="service")  # no-op


async def test_the_meter_charges_a_paused_task_its_memory_alone(
    platform: Platform, actor: Actor
) -> None:
    service = await running_service(platform, actor)
    started = platform.clock.now()
    platform.clock.advance(10)
    await lifecycle.meter_running_runs(platform.domain, platform.clock.now())
    await pausing.pause(platform.domain, actor, service, kind="service")
    (before,) = await platform.runs(service)

    platform.clock.advance(20)
    await lifecycle.meter_running_runs(platform.domain, platform.clock.now())
    (paused,) = await platform.runs(service)
    assert paused.vcpu_seconds == pytest.approx(before.vcpu_seconds)
    assert paused.gb_seconds == pytest.approx(before.gb_seconds + 20 * paused.memory_mb / 1024)

    await pausing.resume(platform.domain, actor, service, kind="service")
    platform.clock.advance(5)
    await lifecycle.meter_running_runs(platform.domain, platform.clock.now())
    (after,) = await platform.runs(service)
    assert after.vcpu_seconds == pytest.approx(after.cpu * 15)
    lived = (platform.clock.now() - started).total_seconds()
    assert after.gb_seconds == pytest.approx(lived * after.memory_mb / 1024)


async def test_an_exec_resumes_a_paused_service_first(platform: Platform, actor: Actor) -> None:
    service = await running_service(platform, actor)
    await pausing.pause(platform.domain, actor, service, kind="service")
    _run, result = await execution.exec_command(
        platform.domain,
        actor,
        service,
        command="echo awake",
        stdin=None,
        timeout_seconds=5,
        run_id=None,
    )
    assert (result.exit_code, result.stdout) == (0, b"awake\n")
    assert (await platform.workload(service)).status == "running"


async def test_a_stopped_service_or_a_job_does_not_pause(platform: Platform, actor: Actor) -> None:
    service = await running_service(platform, actor)
    await workloads.stop_workload(platform.domain, actor, service)
    for _ in range(2):
        await platform.reconcile()
    with pytest.raises(Conflict, match=r"is stopped: only a running service can pause"):
        await pausing.pause(platform.domain, actor, service, kind="service")
    with pytest.raises(Conflict, match="is stopped"):
        await pausing.resume(platform.domain, actor, service, kind="service")
    job = WorkloadCreate(name="once", type="job", image=IMAGE, command="sleep 100")
    job_id = (await workloads.create_workload(platform.domain, actor, job)).workload.id
    with pytest.raises(Conflict, match="a job does not pause"):
        await pausing.pause(platform.domain, actor, job_id, kind="service")


class WithoutFreezer:
    """An engine without the `Pausing` ability (as Kubernetes is)."""

    def __init__(self, runtime: MemoryRuntime) -> None:
        self._runtime = runtime

    def __getattr__(self, name: str) -> Any:
        if name in ("pause", "resume"):
            raise AttributeError(name)
        return getattr(self._runtime, name)


async def test_an_engine_that_cannot_freeze_refuses_a_pause_saying_so(
    platform: Platform, actor: Actor
) -> None:
    service = await running_service(platform, actor)
    engine = WithoutFreezer(platform.runtime)
    assert not isinstance(engine, Pausing)
    domain = dataclasses.replace(platform.domain, runtime=engine)  # type: ignore[arg-type]
    with pytest.raises(pausing.PauseUnsupported, match="pause needs the docker runtime") as no:
        await pausing.pause(domain, actor, service, kind="service")
    assert no.value.code == "pause_unsupported"
    assert (await platform.workload(service)).status == "running"


async def test_a_pause_the_engine_refuses_leaves_the_service_running(
    platform: Platform, actor: Actor
) -> None:
    service = await running_service(platform, actor)
    platform.runtime.fail_next("pause", RuntimeDriverError("the engine said no"))
    with pytest.raises(RuntimeDriverError, match="the engine said no"):
        await pausing.pause(platform.domain, actor, service, kind="service")
    (run,) = await platform.runs(service)
    assert run.paused_at is None and not platform.task_of(run).paused
    assert (await platform.workload(service)).status == "running"


async def test_resume_thaws_a_task_frozen_behind_berths_back(
    platform: Platform, actor: Actor
) -> None:
    service = await running_service(platform, actor)
    (run,) = await platform.runs(service)
    await platform.runtime.pause(TaskId(run.task_id or ""))  # e.g. `docker pause` by hand
    await pausing.resume(platform.domain, actor, service, kind="service")
    assert not platform.task_of(run).paused


async def test_the_gateway_routes_leave_a_paused_services_tasks_out(
    platform: Platform, actor: Actor
) -> None:
    body = WorkloadCreate(
        name="web", type="service", image=IMAGE, command="httpd -f -p 8080", port=8080
    )
    service = (await workloads.create_workload(platform.domain, actor, body)).workload.id
    await platform.reconcile()
    (served,) = (await load_routes(platform.domain, http_port=80)).values()
    assert len(served.upstreams) == 1
    await pausing.pause(platform.domain, actor, service, kind="service")
    (held,) = (await load_routes(platform.domain, http_port=80)).values()
    assert held == Route(service, ())  # a request goes to the waker, which resumes it


def test_a_held_workload_keeps_no_upstream_until_a_later_read_says_otherwise() -> None:
    served = Route("w", (TaskPort(TaskId("t"), 80),))
    table = RouteTable("localhost", {("w", 80): served, ("x", 80): Route("x", ())})
    stale = table.begin_read()  # a reload that read the store before the pause
    table.hold("w")
    assert table.routes()[("w", 80)] == Route("w", ())
    table.set_routes({("w", 80): served}, read=stale)
    assert table.routes()[("w", 80)] == Route("w", ())
    table.set_routes({("w", 80): served}, read=table.begin_read())
    assert table.routes()[("w", 80)] == served
    table.hold("nobody")  # a workload without routes: nothing to hold
    assert ("nobody", 80) not in table.routes()
