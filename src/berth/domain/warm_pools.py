"""Warm pools, the domain's side: what a create may take instead of starting a task.

A *pool task* is launched ahead of any create for a *profile* (`PoolProfile`): a kind of
workload with everything its task needs but its owner (image, command, CPU, memory,
published port, mount paths). It runs, idle and confined like any task, on a holding network
of its own (no tenant's), and it is named and labelled in advance for the workload and run
that will take it: their ids are drawn when the pool task is made.

A create whose task would be exactly a profile's, and needs no environment (no `env`, no
secrets yet), takes one in its own transaction (`claim`): the workload gets the pool task's
ids and its first run is recorded at once. The reconciler then launches that run; launching
is idempotent by name, so the driver finds the pool task and moves it onto the user's
network (`Runtime.launch`). The run is billed from its creation, never for the time the task
waited in the pool. A pool task serves one tenant once: once its create commits it is never
returned to a pool, and a pool task is never reused after a tenant had it.

The shelf of ready tasks is `berth.domain.pool_shelf`; the controller that fills it is
`berth.control.warm_pools`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import select

from berth.domain.context import Domain
from berth.domain.pool_shelf import PooledTask, PoolWant
from berth.store.models import Run, Workload


@contextmanager
def claim(domain: Domain, want: PoolWant | None) -> Iterator[PooledTask | None]:
    """A pool task for `want` (None: the create does not qualify, or no task is ready),
    given back if the block raises. Used inside the create's transaction around its
    inserts: a failure of the commit itself does not give the task back (the commit may
    have happened); the pool controller then sorts it out by whether the workload exists."""
    taken = domain.pools.take(want) if want is not None else None
    try:
        yield taken
    except BaseException:
        if taken is not None:
            domain.pools.give_back(taken)
        raise


def first_run(workload: Workload, task: PooledTask, *, now: datetime) -> Run:
    """A pooled workload's first run, recorded with the create under the pool task's id (so
    the reconciler's launch by name finds the pool task)."""
    return Run(
        id=task.run_id,
        workload_id=workload.id,
        user_id=workload.user_id,
        trigger="replica",
        slot=0,
        generation=workload.generation,
        status="pending",
        cpu=workload.cpu,
        memory_mb=workload.memory_mb,
        created_at=now,
    )


async def existing_workloads(domain: Domain, workload_ids: Collection[str]) -> set[str]:
    """Which of `workload_ids` exist (deleted or not): a pool task whose workload does not
    exist is still a pool's; one whose workload exists was taken."""
    if not workload_ids:
        return set()
    async with domain.store.reading() as session:
        found = await session.scalars(
            select(Workload.id).where(Workload.id.in_(list(workload_ids)))
        )
        return set(found)
