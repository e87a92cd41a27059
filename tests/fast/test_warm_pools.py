"""Warm pools' logic on the in-memory runtime and the manual clock: which creates take a
ready task and which do not, a failed create giving it back, a pass leaving ready tasks
alone, a taken task billed from its create, what a new keeper of the pools does with the
tasks it finds, and how a pool is sized by demand. (On the real engine, with the network
move: tests/integration/test_warm_pools.py.)"""

from __future__ import annotations

import pytest

from berth.config import Settings, WarmPoolSetting
from berth.control.warm_pools import WarmPools
from berth.domain import labels, warm_pools, workloads
from berth.domain.auth import Actor
from berth.domain.errors import Conflict
from berth.domain.pool_shelf import PooledTask, PoolProfile, PoolShelf, PoolWant
from berth.runtime.base import TaskState, TaskStatus
from berth.schemas.workloads import WorkloadCreate
from berth.server.bootstrap import WarmPoolSettingError, warm_pool_profiles
from tests.fast.platform import Platform

IMAGE = "berth/busybox:latest"
SANDBOX = PoolWant("service", IMAGE, 0.25, 256, 8080)


def sandbox_body(name: str = "sandbox", **fields: object) -> WorkloadCreate:
    return WorkloadCreate.model_validate(
        {"name": name, "type": "service", "image": IMAGE, "port": 8080, **fields}
    )


def keeper(platform: Platform, *profiles: PoolProfile) -> WarmPools:
    platform.domain.pools.configure(list(profiles) or [PoolProfile("sandboxes", SANDBOX, 1, 1)])
    return WarmPools(
        platform.domain,
        platform.runtime,
        instance_id=platform.domain.instance_id,
        log_max_bytes=1024 * 1024,
    )


async def started(pools: WarmPools, platform: Platform) -> None:
    """What the keeper does when it takes the lease: look at the engine, open, fill."""
    await pools.refresh()
    platform.domain.pools.open()
    await pools.fill()


def pool_task_ids(platform: Platform) -> set[str]:
    return {
        task.state().task_id
        for task in platform.runtime.tasks()
        if task.state().labels.get(labels.POOLED) == "1"
        and task.state().status is TaskStatus.RUNNING
    }


async def test_a_matching_create_runs_on_the_ready_task_at_once_billed_from_its_create(
    platform: Platform, actor: Actor
) -> None:
    pools = keeper(platform)
    await started(pools, platform)
    (ready,) = platform.domain.pools.ready("sandboxes")
    (pool_task,) = pool_task_ids(platform)

    platform.clock.advance(300)  # the task waited in the pool five minutes
    view = await workloads.create_workload(platform.domain, actor, sandbox_body())
    assert (view.workload.id, view.workload.status) == (ready.workload_id, "running")
    (run,) = await platform.runs(ready.workload_id)
    assert (run.id, run.status, run.task_id) == (ready.run_id, "running", pool_task)
    assert run.started_at == run.created_at == platform.clock.now()  # not the pool's start
    await platform.domain.pools.settle()  # the join to the user's network, after the create
    tenant = labels.tenant_network(platform.domain.instance_id, actor.user_id)
    assert platform.runtime.task(pool_task).joined == {tenant}

    # A pass leaves the taken task running, and the ready task of the refill alone.
    await pools.fill()
    refill = pool_task_ids(platform) - {pool_task}
    assert len(refill) == 1
    await platform.reconcile()
    assert refill | {pool_task} <= pool_task_ids(platform)
    assert (await platform.run(ready.run_id)).status == "running"


async def test_a_refused_create_takes_nothing(platform: Platform, actor: Actor) -> None:
    pools = keeper(platform)
    await workloads.create_workload(platform.domain, actor, sandbox_body("taken-name"))
    await started(pools, platform)
    before = platform.domain.pools.ready("sandboxes")
    with pytest.raises(Conflict):
        await workloads.create_workload(platform.domain, actor, sandbox_body("taken-name"))
    assert platform.domain.pools.ready("sandboxes") == before


async def test_a_create_failing_after_its_take_removes_the_task(
    platform: Platform, actor: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the take (here the insert itself) may still have committed as far as
    the caller knows: the task is removed, never handed to anyone again."""
    pools = keeper(platform)
    await started(pools, platform)
    (ready,) = platform.domain.pools.ready("sandboxes")

    def insert_fails(*_args: object, **_kwargs: object) -> object:
        raise RuntimeError("the insert failed")

    monkeypatch.setattr(warm_pools, "running_first_run", insert_fails)
    with pytest.raises(RuntimeError):
        await workloads.create_workload(platform.domain, actor, sandbox_body())
    assert ready.task_id not in pool_task_ids(platform)
    assert platform.domain.pools.ready("sandboxes") == []


@pytest.mark.parametrize(
    "fields",
    [
        {"command": "httpd -f -p 8080"},
        {"env": {"MODE": "x"}},
        {"memory_mb": 512},
        {"port": 9000},
        {"scale_to_zero": True, "idle_timeout_seconds": 60},
    ],
)
async def test_a_create_of_another_shape_starts_its_own_task(
    platform: Platform, actor: Actor, fields: dict[str, object]
) -> None:
    pools = keeper(platform)
    await started(pools, platform)
    (ready,) = platform.domain.pools.ready("sandboxes")
    view = await workloads.create_workload(platform.domain, actor, sandbox_body(**fields))
    assert view.workload.id != ready.workload_id
    assert platform.domain.pools.ready("sandboxes") == [ready]


async def test_a_closed_shelf_hands_out_nothing(platform: Platform, actor: Actor) -> None:
    pools = keeper(platform)
    await started(pools, platform)
    platform.domain.pools.close()  # the lease went to another replica
    view = await workloads.create_workload(platform.domain, actor, sandbox_body())
    assert view.workload.id not in {t.labels[labels.WORKLOAD] for t in _pool_states(platform)}


def _pool_states(platform: Platform) -> list[TaskState]:
    return [
        task.state() for task in platform.runtime.tasks() if labels.POOLED in task.state().labels
    ]


async def test_a_new_keeper_removes_the_tasks_it_finds_and_makes_its_own(
    platform: Platform,
) -> None:
    first = keeper(platform, PoolProfile("sandboxes", SANDBOX, 2, 2))
    await started(first, platform)
    before = pool_task_ids(platform)
    assert len(before) == 2
    platform.domain.pools.close()

    # A restarted berth cannot tell whether a task it finds joined a tenant's network
    # before a crash: it removes them and makes its pool anew.
    second = keeper(platform, PoolProfile("sandboxes", SANDBOX, 1, 1))
    await started(second, platform)
    after = pool_task_ids(platform)
    assert len(after) == 1 and not after & before
    assert {t.task_id for t in platform.domain.pools.ready("sandboxes")} == after


async def test_a_ready_task_that_dies_is_replaced_after_a_back_off(platform: Platform) -> None:
    pools = keeper(platform)
    await started(pools, platform)
    (dead,) = pool_task_ids(platform)
    platform.runtime.finish(dead, exit_code=1)
    await pools.refresh()
    assert platform.domain.pools.ready("sandboxes") == []
    await pools.fill()  # backing off: nothing made yet
    assert pool_task_ids(platform) == set()


def test_a_pool_holds_what_the_last_minute_asked_for_within_its_bounds() -> None:
    now = [0.0]
    shelf = PoolShelf(now=lambda: now[0])
    shelf.configure([PoolProfile("p", SANDBOX, 1, 3)])
    shelf.open()
    assert shelf.target("p") == 1
    for _ in range(5):  # five creates found the pool empty
        assert shelf.take(SANDBOX) is None
    assert shelf.target("p") == 3  # capped at max_size
    now[0] += 61
    assert shelf.target("p") == 1


def test_a_taken_task_is_held_until_its_create_had_time_to_commit() -> None:
    now = [0.0]
    shelf = PoolShelf(now=lambda: now[0])
    shelf.configure([PoolProfile("p", SANDBOX, 1, 1)])
    shelf.open()
    shelf.put(PooledTask("p", "w1", "run_1", "t1"))
    taken = shelf.take(SANDBOX)
    assert taken is not None and shelf.holds("run_1")
    now[0] += 61
    shelf.forget_taken()
    assert not shelf.holds("run_1")


def test_settings_name_what_cannot_be_a_pool() -> None:
    def profiles(**settings: object) -> list[PoolProfile]:
        return warm_pool_profiles(Settings.model_validate(settings))

    (box,) = profiles(warm_pools=[WarmPoolSetting(kind="devbox")])
    # The shape of a create that leaves everything out.
    assert box.want == PoolWant("container", "berth/busybox:latest", 0.5, 512, None, ("/root",))
    assert (box.name, box.size, box.max_size) == ("devbox-0", 1, 4)
    failures = {
        "docker runtime": {"runtime": "kubernetes", "warm_pools": [{"kind": "devbox"}]},
        "unknown instance_type 'huge'": {
            "warm_pools": [{"kind": "devbox", "instance_type": "huge"}]
        },
        "needs an image": {"warm_pools": [{"kind": "service"}]},
        "mount_paths": {"warm_pools": [{"kind": "devbox", "mount_paths": ["/etc"]}]},
        "two pools are named 'a'": {
            "warm_pools": [{"kind": "devbox", "name": "a"}, {"kind": "devbox", "name": "a"}]
        },
    }
    for says, settings in failures.items():
        with pytest.raises(WarmPoolSettingError, match=says):
            profiles(**settings)
