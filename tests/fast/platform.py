"""berth's domain and reconciler on the in-memory runtime and a manual clock, driven one
step at a time, with readers for what a step left in the store and on the "engine"."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import event, select

from berth.clock import ManualClock
from berth.control.reconciler import Reconciler
from berth.domain.context import Domain
from berth.runtime.base import TaskStatus
from berth.runtime.memory import MemoryRuntime, MemoryTask
from berth.store.models import Run, User, Workload

STOP_GRACE = 1.0
BACKOFF_MAX = 60.0

_insert_order: dict[str, int] = {}
_inserts = itertools.count()


@event.listens_for(Run, "after_insert")
def _remember_insert_order(_mapper: Any, _connection: Any, run: Run) -> None:
    """Runs written at one instant of the manual clock are told apart by the order they were
    written in, on any database (SQLite's rowid has no portable equivalent)."""
    _insert_order[run.id] = next(_inserts)


class Platform:
    def __init__(self, domain: Domain, runtime: MemoryRuntime, clock: ManualClock) -> None:
        self.domain = domain
        self.runtime = runtime
        self.clock = clock
        self.reconciler = Reconciler(
            domain,
            runtime,
            instance_id=domain.instance_id,
            interval=10.0,
            stop_grace=STOP_GRACE,
            backoff_max=BACKOFF_MAX,
            log_max_bytes=1024 * 1024,
        )

    async def reconcile(self) -> None:
        """One reconcile pass, and the engine operations it started, to their end."""
        await self.reconciler.reconcile_once()
        await self.reconciler.settle()

    async def runs(self, workload_id: str) -> list[Run]:
        """Every run of the workload, oldest first (standby runs included); runs made at
        one instant of the manual clock in the order they were written."""
        async with self.domain.store.reading() as session:
            rows = await session.scalars(select(Run).where(Run.workload_id == workload_id))
            return sorted(rows, key=lambda run: (run.created_at, _insert_order.get(run.id, -1)))

    async def run(self, run_id: str) -> Run:
        async with self.domain.store.reading() as session:
            run = await session.get(Run, run_id)
        assert run is not None
        return run

    async def workload(self, workload_id: str) -> Workload:
        async with self.domain.store.reading() as session:
            workload = await session.get(Workload, workload_id)
        assert workload is not None
        return workload

    async def credits(self, user_id: str) -> float:
        async with self.domain.store.reading() as session:
            user = await session.get(User, user_id)
        assert user is not None
        return user.credits

    def task_of(self, run: Run) -> MemoryTask:
        """The run's task on the in-memory engine."""
        assert run.task_id is not None, f"run {run.id} has no task"
        return self.runtime.task(run.task_id)

    def running_tasks(self) -> list[MemoryTask]:
        return [t for t in self.runtime.tasks() if t.status is TaskStatus.RUNNING]
