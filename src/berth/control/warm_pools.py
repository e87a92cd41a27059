"""Warm pools, the controller: keeps each profile's ready tasks on the engine.

Runs while this replica holds the `warm-pools` lease. It puts on the shelf
(`berth.domain.pool_shelf`) tasks it launched for each profile and refills a pool as creates
take from it: one launch at a time, and, while the pool still has ready tasks, a moment
after the take (`pool_shelf.REFILL_DELAY_SECONDS`), so a burst of creates never starves the engine
and a refill does not compete with the first commands of the task just taken. Every
`refresh_seconds` it lists the pool tasks on the engine to sort them out:

- a ready task that died is removed (and its profile backs off, 5 s doubling to 5 min:
  an image whose command exits at once is not relaunched in a loop);
- a task whose workload exists was taken: the reconciler owns it from then on (the first
  time one is seen so, its join to its owner's network is made sure of);
- any other (made by an earlier keeper, before berth restarted or the lease moved, or
  taken by a create that failed) is removed with its volumes, never shelved: it may have
  joined a tenant's network. A restarted berth therefore makes its pools anew.

Pool tasks cost the operator, not users: no run exists for one until a create takes it,
and the taken run is billed from the create (`berth.domain.warm_pools`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time

from berth.control.tasks import build_task_spec
from berth.domain import labels, warm_pools
from berth.domain.containers import KEEP_ALIVE
from berth.domain.context import Domain
from berth.domain.ids import new_run_id, new_workload_id
from berth.domain.pool_shelf import PooledTask, PoolProfile
from berth.domain.records import Run, Workload
from berth.runtime.base import (
    ImageNotFound,
    InvalidTaskSpec,
    Runtime,
    RuntimeDriverError,
    TaskNotFound,
    TaskSpec,
    TaskState,
    TaskStatus,
)

log = logging.getLogger("berth.pools")

REFRESH_SECONDS = 10.0
FIRST_BACKOFF_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 300.0


def pool_network(instance_id: str) -> str:
    """The holding network of pool tasks: of no tenant, its tasks unable to reach each other."""
    return f"berth-{instance_id}-pool"


def pool_task_spec(
    profile: PoolProfile, *, instance_id: str, workload_id: str, run_id: str, log_max_bytes: int
) -> TaskSpec:
    """The task a create matching `profile` would start, made ahead: named and labelled for
    the workload and run that will take it, but of no user, on the holding network."""
    want = profile.want
    workload = Workload(
        id=workload_id,
        user_id="",
        type=want.kind,
        image=want.image,
        command=list(KEEP_ALIVE) if want.kind == "container" else None,
        command_text=None,
        port=want.port,
        mount_paths=list(want.mount_paths),
        storage_gb=None,
    )
    run = Run(id=run_id, generation=1, cpu=want.cpu, memory_mb=want.memory_mb)
    spec = build_task_spec(
        instance_id=instance_id, workload=workload, run=run, env={}, log_max_bytes=log_max_bytes
    )
    return dataclasses.replace(
        spec,
        labels={
            **labels.pool_selector(instance_id),
            labels.POOL: profile.name,
            labels.WORKLOAD: workload_id,
            labels.RUN: run_id,
            labels.GENERATION: "1",
        },
        network=pool_network(instance_id),
        network_labels=labels.pool_selector(instance_id),
        network_isolated=True,
        volume_labels=labels.workload_selector(instance_id, workload_id),
    )


class WarmPools:
    def __init__(
        self,
        domain: Domain,
        runtime: Runtime,
        *,
        instance_id: str,
        log_max_bytes: int,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._domain = domain
        self._runtime = runtime
        self._shelf = domain.pools
        self._instance_id = instance_id
        self._log_max_bytes = log_max_bytes
        self._refresh_seconds = refresh_seconds
        self._wake = asyncio.Event()
        self._shelf.changed = self._wake.set
        self._backoff: dict[str, tuple[float, float]] = {}
        """profile -> (monotonic time until which it is not refilled, the last wait)."""
        self._taken: set[str] = set()
        """Workloads of pool tasks known taken (seen with their workload in the database)."""

    async def run_forever(self) -> None:
        try:
            refreshed = float("-inf")
            while True:
                wait = self._refresh_seconds
                try:
                    if time.monotonic() - refreshed >= self._refresh_seconds:
                        await self.refresh()
                        refreshed = time.monotonic()
                        self._shelf.open()
                    wait = min(wait, await self.fill())
                except RuntimeDriverError as exc:
                    log.warning("warm pools: the engine failed (%s); retrying", exc)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(wait, 0.05)):
                        await self._wake.wait()
        finally:
            self._shelf.close()

    async def fill(self) -> float:
        """Launch ready tasks until every pool holds its target, one at a time; the seconds
        until a pool held back after a take (`PoolShelf.refill_wait`) may go on."""
        soonest = self._refresh_seconds
        for profile in self._shelf.profiles:
            while len(self._shelf.ready(profile.name)) < self._shelf.target(profile.name):
                if self._backoff.get(profile.name, (0.0, 0.0))[0] > time.monotonic():
                    break
                held_back = self._shelf.refill_wait(profile.name)
                if held_back > 0:
                    soonest = min(soonest, held_back)
                    break
                task = await self._make(profile)
                if task is None:
                    break
                self._shelf.put(task)
        return soonest

    async def _make(self, profile: PoolProfile) -> PooledTask | None:
        workload_id, run_id = new_workload_id(), new_run_id()
        spec = pool_task_spec(
            profile,
            instance_id=self._instance_id,
            workload_id=workload_id,
            run_id=run_id,
            log_max_bytes=self._log_max_bytes,
        )
        try:
            state = await self._runtime.launch(spec)
        except (ImageNotFound, InvalidTaskSpec) as exc:
            self._failed(profile.name, str(exc))
            return None
        if state.status is TaskStatus.EXITED:
            await self._remove(state, workload_id)
            self._failed(profile.name, f"its task exited at once (exit code {state.exit_code})")
            return None
        self._backoff.pop(profile.name, None)
        return PooledTask(profile.name, workload_id, run_id, state.task_id)

    def _failed(self, name: str, why: str) -> None:
        last = self._backoff.get(name, (0.0, FIRST_BACKOFF_SECONDS / 2))[1]
        wait = min(last * 2, MAX_BACKOFF_SECONDS)
        self._backoff[name] = (time.monotonic() + wait, wait)
        log.warning("warm pool %s: %s; next try in %.0f s", name, why, wait)

    async def refresh(self) -> None:
        """Sort out the pool tasks on the engine (see the module's docstring)."""
        tasks = await self._runtime.list_tasks(labels.pool_selector(self._instance_id))
        self._shelf.forget_taken()
        seen = {task.labels.get(labels.WORKLOAD, "") for task in tasks}
        self._taken &= seen
        unknown: dict[str, TaskState] = {}
        for task in tasks:
            workload_id = task.labels.get(labels.WORKLOAD, "")
            run_id = task.labels.get(labels.RUN, "")
            if workload_id in self._taken:
                continue
            if self._shelf.holds(run_id):
                if task.status is TaskStatus.EXITED and self._shelf.discard(run_id):
                    await self._remove(task, workload_id)
                    self._failed(task.labels.get(labels.POOL, ""), "a ready task exited")
                continue
            unknown[workload_id] = task
        owners = await warm_pools.owners(self._domain, unknown)
        for workload_id, user_id in owners.items():
            # Seen taken for the first time here: its join is made sure of (idempotent),
            # in case the hand-over was cut short by a stop.
            if unknown[workload_id].status is TaskStatus.RUNNING:
                with contextlib.suppress(TaskNotFound):
                    await warm_pools.join_owner_network(
                        self._domain, unknown[workload_id].task_id, user_id
                    )
            self._taken.add(workload_id)
        for workload_id, task in unknown.items():
            if workload_id not in owners:
                # Not on this shelf and of no workload: made before this keeper (berth
                # restarted, the lease moved) or taken by a create that failed. Either may
                # have joined a tenant's network, so it is never shelved again.
                await self._remove(task, workload_id)

    async def _remove(self, task: TaskState, workload_id: str) -> None:
        await self._runtime.remove(task.task_id)
        await self._runtime.remove_volumes(labels.workload_selector(self._instance_id, workload_id))
