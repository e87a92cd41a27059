"""Warm pools, the domain's side: a create that takes a ready task instead of starting one.

A *pool task* is launched ahead of any create for a *profile* (`PoolProfile`): a kind of
workload with everything its task needs but its owner (image, command, CPU, memory,
published port, mount paths). It runs, idle and confined like any task, on a holding network
of its own (no tenant's; its tasks cannot reach one another), and it is named and labelled
in advance for the workload and run that will take it: their ids are drawn when the pool
task is made, and its volumes are labelled for that workload.

A create whose task would be exactly a profile's, and needs no environment (no `env`, no
secrets yet), takes one (`take`) in its transaction, which records the workload under the
task's ids with its first run already running on it (`running_first_run`), billed from
that moment, never for the time the task waited in the pool. After the commit the task
joins the user's network (the runtime's `NetworkJoining`) in the background, after its
first command (`hand_over`): the create answers with a task that takes commands at once.
The reconciler then sees an ordinary running run.

A taken task is never returned to a pool: a create that fails after the take removes it
(`discard`), as does the pool controller for any task it cannot account for.

The shelf of ready tasks is `berth.domain.pool_shelf`; the controller that fills it is
`berth.control.warm_pools`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select

from berth.domain import labels
from berth.domain.context import Domain
from berth.domain.events import Event
from berth.domain.pool_shelf import PooledTask, PoolWant
from berth.runtime.base import NetworkJoining, RuntimeDriverError, RuntimeUnavailable, TaskId
from berth.store.models import Run, Workload

log = logging.getLogger("berth.pools")

FIRST_USE_SECONDS = 1.0
"""A taken task joins its user's network after its first command, or this long after the
create if none came."""
JOIN_ATTEMPTS = 3
"""Tries of a taken task's join while the engine is unreachable (0.5 s, then 1 s apart)."""


def take(domain: Domain, want: PoolWant | None) -> PooledTask | None:
    """A ready task for `want`; None when the create does not qualify, no task is ready,
    or the engine cannot attach a task to another network (the create then starts its own
    task as usual)."""
    if want is None or not isinstance(domain.runtime, NetworkJoining):
        return None
    return domain.pools.take(want)


def hand_over(domain: Domain, workload: Workload, task: PooledTask) -> None:
    """After the create's commit: announce the run started (the gateway routes to it at
    once) and join the task to the user's network in the background, once its first
    command ended or `FIRST_USE_SECONDS` passed, whichever is sooner. A join costs the
    engine 50-150 ms (more with a published port) and holds the task meanwhile: done at
    once, it would delay the first command by as much. Until it, the task reaches the
    internet through the holding network, but not the user's other tasks."""
    domain.bus.publish(
        Event(
            "run.started",
            user_id=workload.user_id,
            workload_id=workload.id,
            data={"run_id": task.run_id, "status": "running"},
        )
    )
    domain.pools.in_background(_join(domain, task, workload.user_id))


async def _join(domain: Domain, task: PooledTask, user_id: str) -> None:
    runtime = domain.runtime
    assert isinstance(runtime, NetworkJoining)
    await domain.pools.first_use(task.task_id, within=FIRST_USE_SECONDS)
    for attempt in range(JOIN_ATTEMPTS):
        try:
            await join_owner_network(domain, task.task_id, user_id)
            return
        except RuntimeUnavailable as exc:
            if attempt + 1 == JOIN_ATTEMPTS:
                failure: RuntimeDriverError = exc
                break
            await asyncio.sleep(0.5 * 2**attempt)
        except RuntimeDriverError as exc:
            failure = exc
            break
    # A task that cannot join its user's network is not theirs to keep: removed, its run
    # ends as a task that disappeared, and the workload's next task starts as usual.
    log.warning("warm pool task %s could not join its network (%s); removed", task.task_id, failure)
    with contextlib.suppress(RuntimeDriverError):
        await runtime.remove(TaskId(task.task_id))


async def discard(domain: Domain, task: PooledTask) -> None:
    """Remove a taken task whose create failed, with its volumes: the commit may have
    happened after all (a lost connection), so the task never goes back to a pool."""
    if domain.runtime is None:
        return
    try:
        await domain.runtime.remove(TaskId(task.task_id))
        await domain.runtime.remove_volumes(
            labels.workload_selector(domain.instance_id, task.workload_id)
        )
    except RuntimeDriverError as exc:  # the pool controller removes it on its next look
        log.warning("could not remove the unused warm pool task %s: %s", task.task_id, exc)


def running_first_run(workload: Workload, task: PooledTask, *, now: datetime) -> Run:
    """A pooled workload's first run, recorded with the create: running on the pool task
    from now (its slot 0, the workload's first generation)."""
    return Run(
        id=task.run_id,
        workload_id=workload.id,
        user_id=workload.user_id,
        trigger="replica",
        slot=0,
        generation=workload.generation,
        status="running",
        task_id=task.task_id,
        started_at=now,
        metered_until=now,
        cpu=workload.cpu,
        memory_mb=workload.memory_mb,
        created_at=now,
    )


async def owners(domain: Domain, workload_ids: Collection[str]) -> dict[str, str]:
    """The owner of each of `workload_ids` that exists (deleted or not): a pool task whose
    workload does not exist is not a tenant's; one whose workload exists was taken."""
    if not workload_ids:
        return {}
    async with domain.store.reading() as session:
        found = await session.execute(
            select(Workload.id, Workload.user_id).where(Workload.id.in_(list(workload_ids)))
        )
        return {workload_id: user_id for workload_id, user_id in found}


async def join_owner_network(domain: Domain, task_id: str, user_id: str) -> None:
    """Join a taken task to its owner's network (idempotent): the pool controller's check
    that a hand-over cut short (berth stopped meanwhile) still happens."""
    runtime = domain.runtime
    if isinstance(runtime, NetworkJoining):
        await runtime.join_network(
            TaskId(task_id),
            labels.tenant_network(domain.instance_id, user_id),
            labels.tenant_network_labels(domain.instance_id, user_id),
        )
