"""Idle dev boxes pause by themselves (`BERTH_DEV_BOX_IDLE_PAUSE_SECONDS`), on the manual
clock: a box nobody used for the idle time is paused by the idle scaler; a use held open
on this replica (an SSH login, a terminal), or announced by another one, keeps it running;
a resumed box counts its idle time anew; with the setting at 0 nothing is paused."""

from __future__ import annotations

from berth.domain import activity, containers, pausing, ssh_keys
from berth.domain.auth import Actor
from berth.gateway.http.scale_to_zero import IdleScaler
from berth.schemas.containers import ContainerCreate
from berth.store.models import Workload
from tests.fast.platform import Platform
from tests.support.keys import public_key_only

IDLE = 600


async def running_box(platform: Platform, actor: Actor) -> str:
    key = await ssh_keys.add_key(platform.domain, actor, name="k", public_key=public_key_only())
    body = ContainerCreate(name="box", ssh_key_ids=[key.id], image="berth/busybox:latest")
    box = (await containers.create_container(platform.domain, actor, body)).workload.id
    async with platform.domain.store.transaction() as session:
        made = await session.get(Workload, box)
        assert made is not None
        made.command = ["sleep", "infinity"]  # the keep-alive loop is beyond the toy shell
    await platform.reconcile()
    runs = await platform.runs(box)
    assert [run.status for run in runs] == ["running"], [r.status_reason for r in runs]
    return box


async def paused(platform: Platform, box: str) -> bool:
    (run,) = await platform.runs(box)
    return run.paused_at is not None and platform.task_of(run).paused


async def test_a_box_nobody_uses_is_paused_after_the_idle_time(
    platform: Platform, actor: Actor
) -> None:
    box = await running_box(platform, actor)
    scaler = IdleScaler(platform.domain, interval=1, box_idle_seconds=IDLE)
    platform.clock.advance(IDLE - 1)
    await scaler.scale_idle_services()
    assert not await paused(platform, box)
    platform.clock.advance(2)
    await scaler.scale_idle_services()
    assert await paused(platform, box)
    assert (await platform.workload(box)).status == "paused"

    # Resumed, it is used: its idle time counts anew from the resume.
    events = platform.domain.bus.subscribe()
    await pausing.wake_workload(platform.domain, box)
    for event in events.take_waiting():
        scaler.heard(event)
    platform.clock.advance(IDLE - 1)
    await scaler.scale_idle_services()
    assert not await paused(platform, box)


async def test_a_use_held_open_or_announced_keeps_a_box_running(
    platform: Platform, actor: Actor
) -> None:
    box = await running_box(platform, actor)
    scaler = IdleScaler(platform.domain, interval=1, box_idle_seconds=IDLE)
    with platform.domain.uses.hold(box):  # an SSH login on this replica, hours long
        platform.clock.advance(IDLE * 10)
        await scaler.scale_idle_services()
        assert not await paused(platform, box)

    # A login on another replica reaches this one as an announcement.
    events = platform.domain.bus.subscribe()
    activity.announce(platform.domain, box)
    for event in events.take_waiting():
        scaler.heard(event)
    platform.clock.advance(IDLE - 1)
    await scaler.scale_idle_services()
    assert not await paused(platform, box)
    platform.clock.advance(2)
    await scaler.scale_idle_services()
    assert await paused(platform, box)


async def test_with_no_idle_time_set_no_box_is_paused(platform: Platform, actor: Actor) -> None:
    box = await running_box(platform, actor)
    scaler = IdleScaler(platform.domain, interval=1)
    platform.clock.advance(IDLE * 100)
    await scaler.scale_idle_services()
    assert not await paused(platform, box)


def test_open_uses_count_each_holder() -> None:
    uses = activity.OpenUses()
    uses.add("box")
    with uses.hold("box"):
        assert uses.held() == ["box"]
    assert uses.held() == ["box"]
    uses.discard("box")
    assert uses.held() == []
