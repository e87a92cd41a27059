"""Scale to zero on the manual clock: a service idle for its timeout goes to sleep keeping a
standby task created, and a wake promotes that standby and only starts its task."""

from __future__ import annotations

from berth.domain import workloads
from berth.domain.auth import Actor
from berth.gateway.http.scale_to_zero import IdleScaler
from berth.runtime.base import TaskId, TaskStatus
from berth.schemas.workloads import WorkloadCreate
from berth.store.models import Run
from tests.fast.platform import Platform

IMAGE = "berth/busybox:latest"


async def create_sleepy_service(platform: Platform, actor: Actor) -> str:
    body = WorkloadCreate(
        name="sleepy",
        type="service",
        image=IMAGE,
        command="httpd -f -p 8080",
        port=8080,
        scale_to_zero=True,
        idle_timeout_seconds=60,
    )
    return (await workloads.create_workload(platform.domain, actor, body)).workload.id


async def put_to_sleep(platform: Platform, service: str) -> Run:
    """Scale the idle service to zero and run the passes that leave it asleep; its standby."""
    assert await workloads.scale_idle_service_to_zero(
        platform.domain, service, idle_since=platform.clock.now()
    )
    for _ in range(3):  # stop the task, record its end, prepare the standby
        await platform.reconcile()
    standby = [run for run in await platform.runs(service) if run.standby]
    assert len(standby) == 1
    return standby[0]


async def test_an_idle_service_sleeps_after_its_timeout_since_the_last_request(
    platform: Platform, actor: Actor
) -> None:
    service = await create_sleepy_service(platform, actor)
    await platform.reconcile()
    idle = IdleScaler(platform.domain, interval=1)

    platform.clock.advance(30)
    idle.saw_request(service)
    platform.clock.advance(59)
    await idle.scale_idle_services()
    assert (await platform.workload(service)).desired_state == "running"

    platform.clock.advance(1)  # 60 s without a request
    await idle.scale_idle_services()
    assert (await platform.workload(service)).desired_state == "stopped"

    for _ in range(3):
        await platform.reconcile()
    served, standby = await platform.runs(service)
    assert (served.status, served.status_reason) == ("stopped", "stopped (idle)")
    assert (standby.standby, standby.status) == (True, "pending")
    assert platform.task_of(standby).status is TaskStatus.CREATED  # created, not started
    assert platform.running_tasks() == []
    workload = await platform.workload(service)
    assert workload.status == "stopped"
    assert workload.status_reason == "scaled to zero: a request or POST .../start wakes it"


async def test_a_wake_starts_the_standby_task_without_creating_another(
    platform: Platform, actor: Actor
) -> None:
    service = await create_sleepy_service(platform, actor)
    await platform.reconcile()
    platform.clock.advance(60)
    standby = await put_to_sleep(platform, service)
    created = platform.runtime.calls["create"]

    woken_at = platform.clock.advance(600)
    wake = await workloads.wake_service(platform.domain, service)
    assert (wake.woken, wake.standby_run_id) == (True, standby.id)
    platform.reconciler.start_now(standby.id)  # what the gateway's waker asks for
    await platform.reconciler.settle()

    awake = await platform.run(standby.id)
    assert (awake.standby, awake.status, awake.task_id) == (False, "running", standby.task_id)
    assert awake.started_at == woken_at
    assert platform.runtime.calls["create"] == created
    # Its server answers inside the task, which is what the waker probes before forwarding.
    (await platform.runtime.open_port(TaskId(awake.task_id or ""), 8080)).close()

    await platform.reconcile()
    assert (await platform.workload(service)).status == "running"
    assert not [run for run in await platform.runs(service) if run.standby]


async def test_a_service_woken_twice_is_woken_once(platform: Platform, actor: Actor) -> None:
    service = await create_sleepy_service(platform, actor)
    await platform.reconcile()
    platform.clock.advance(60)
    await put_to_sleep(platform, service)
    assert (await workloads.wake_service(platform.domain, service)).woken
    assert not (await workloads.wake_service(platform.domain, service)).woken


async def test_requests_served_by_another_replica_keep_a_service_awake(
    platform: Platform, actor: Actor
) -> None:
    """The idle scaler runs on one replica; requests another replica's gateway serves reach
    it as `workload.activity` events (taken here from the bus, as `follow_activity` does
    with what the bridge between replicas delivers)."""
    service = await create_sleepy_service(platform, actor)
    await platform.reconcile()
    running, other_replica = (IdleScaler(platform.domain, interval=1) for _ in range(2))
    events = platform.domain.bus.subscribe()
    platform.clock.advance(50)
    other_replica.saw_request(service)
    other_replica.saw_request(service)  # announced once: within ACTIVITY_SHARE_SECONDS
    announced = events.take_waiting()
    assert [event.kind for event in announced] == ["workload.activity"]
    running.heard(announced[0])
    platform.clock.advance(30)  # 80 s since creation, 30 s since the request
    await running.scale_idle_services()
    assert (await platform.workload(service)).desired_state == "running"
    platform.clock.advance(30)
    await running.scale_idle_services()
    assert (await platform.workload(service)).desired_state == "stopped"
