"""Warm pools, the domain's side: a create that takes a ready task instead of starting one.

A *pool task* is launched ahead of any create for a *profile* (`PoolProfile`): a kind of
workload with everything its task needs but its owner (image, command, CPU, memory,
published port, mount paths). It runs, idle and confined like any task, on a holding network
of its own (no tenant's; its tasks cannot reach one another), and it is named and labelled
in advance for the workload and run that will take it: their ids are drawn when the pool
task is made, and its volumes are labelled for that workload.

A create whose task would be exactly a profile's, and needs no environment (no `env`, no
secrets yet), once its checks pass, takes one (`take`): the task joins the user's network
(the runtime's `NetworkJoining`), then the create's transaction records the workload under
the task's ids with its first run already running on it (`running_first_run`), billed from
that moment, never for the time the task waited in the pool. The create answers with a task
that takes commands at once. The reconciler then sees an ordinary running run.

A taken task is never returned to a pool: a create that fails after the take removes it
(`discard`), as does the pool controller for any task it cannot account for.

The shelf of ready tasks is `berth.domain.pool_shelf`; the controller that fills it is
`berth.control.warm_pools`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select

from berth.domain import labels
from berth.domain.context import Domain
from berth.domain.events import Event
from berth.domain.pool_shelf import PooledTask, PoolWant
from berth.runtime.base import NetworkJoining, RuntimeDriverError, TaskId
from berth.store.models import Run, Workload

log = logging.getLogger("berth.pools")


async def take(domain: Domain, want: PoolWant | None, user_id: str) -> PooledTask | None:
    """A ready task for `want`, now on the user's network; None when the create does not
    qualify, no task is ready, or the engine would not attach it (the create then starts
    its own task as usual)."""
    runtime = domain.runtime
    if want is None or not isinstance(runtime, NetworkJoining):
        return None
    task = domain.pools.take(want)
    if task is None:
        return None
    try:
        await runtime.join_network(
            TaskId(task.task_id),
            labels.tenant_network(domain.instance_id, user_id),
            labels.tenant_network_labels(domain.instance_id, user_id),
        )
    except RuntimeDriverError as exc:
        log.warning("a warm pool task could not join a tenant's network: %s", exc)
        await discard(domain, task)
        return None
    return task


async def discard(domain: Domain, task: PooledTask) -> None:
    """Remove a taken task whose create did not happen, with its volumes (it may have joined
    a tenant's network, so it never goes back to a pool)."""
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


def announce_started(domain: Domain, workload: Workload, task: PooledTask) -> None:
    """After the create's commit: the run started (the gateway routes to it at once)."""
    domain.bus.publish(
        Event(
            "run.started",
            user_id=workload.user_id,
            workload_id=workload.id,
            data={"run_id": task.run_id, "status": "running"},
        )
    )


async def existing_workloads(domain: Domain, workload_ids: Collection[str]) -> set[str]:
    """Which of `workload_ids` exist (deleted or not): a pool task whose workload does not
    exist is not a tenant's; one whose workload exists was taken."""
    if not workload_ids:
        return set()
    async with domain.store.reading() as session:
        found = await session.scalars(
            select(Workload.id).where(Workload.id.in_(list(workload_ids)))
        )
        return set(found)
