"""Reading runs and their output.

A run's output comes from the log archive once its task has ended, and from the engine while
the task still runs (which also lets a caller follow it live).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from berth.domain.accounts import check_compute_actor, ensure_compute_actor
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.errors import NotFound
from berth.domain.paging import Keyset, Page, Position, make_page, page_request
from berth.domain.views import RUN_COLUMNS, RunRecord, check_owned_workload
from berth.domain.workloads import owned_workload
from berth.runtime.base import LogLine, RuntimeDriverError, TaskId
from berth.store.models import ACTIVE_RUN_STATUSES, Run
from berth.store.reads import Reader

PENDING_WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class RunOutput:
    workload_id: str
    run: Run | None
    live: bool
    lines: list[LogLine]


RUN_LIST = "runs"
"""The name a run list's cursors carry."""


_RUN_KEYSET = Keyset(Run.created_at, Run.id, newest_first=True)
_FIRST_RUNS, _LATER_RUNS = _RUN_KEYSET.pages(
    select(*RUN_COLUMNS).where(Run.workload_id == bindparam("workload_id"), Run.standby.is_(False))
)


async def list_runs(
    domain: Domain,
    actor: Actor,
    workload_id: str,
    *,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[RunRecord]:
    """One page of the workload's runs, newest first (creation time, then id)."""
    request = page_request(RUN_LIST, limit, cursor)
    params: dict[str, object] = {"workload_id": workload_id}
    statement = _LATER_RUNS if _RUN_KEYSET.params(request, params) else _FIRST_RUNS

    def read(reader: Reader) -> list[RunRecord]:
        check_compute_actor(reader, actor)
        check_owned_workload(reader, actor.user_id, workload_id)
        return [RunRecord._make(row) for row in reader.all(statement, params)]

    rows = await domain.store.read(read, snapshot=False)
    return make_page(RUN_LIST, rows, request.limit, _position)


def _position(run: RunRecord) -> Position:
    return Position(created_at=run.created_at, id=run.id)


async def find_run(
    domain: Domain, actor: Actor, workload_id: str, run_id: str | None
) -> Run | None:
    """The named run, or with `run_id` None the one whose output readers want: a running
    task of a service (lowest replica first), else the latest run."""
    async with domain.store.reading() as session:
        await ensure_compute_actor(session, actor)
        await owned_workload(session, actor, workload_id)
        if run_id is not None:
            run = await session.get(Run, run_id)
            if run is None or run.workload_id != workload_id or run.standby:
                raise NotFound(f"run {run_id} not found")
            return run
        running = await session.scalar(
            select(Run)
            .where(Run.workload_id == workload_id, Run.status == "running")
            .order_by(Run.slot, Run.created_at.desc())
            .limit(1)
        )
        if running is not None:
            return running
        return await session.scalar(
            select(Run)
            .where(Run.workload_id == workload_id, Run.standby.is_(False))
            .order_by(Run.created_at.desc())
            .limit(1)
        )


async def read_output(domain: Domain, workload_id: str, run: Run | None) -> RunOutput:
    if run is None:
        return RunOutput(workload_id=workload_id, run=None, live=False, lines=[])
    if not run.logs_archived and run.task_id and domain.runtime is not None:
        try:
            lines = [line async for line in domain.runtime.logs(TaskId(run.task_id), follow=False)]
            # Read from the engine until the archive is written, which follows the run's
            # end by a moment: live only while the run itself has not ended.
            live = run.status in ACTIVE_RUN_STATUSES
            return RunOutput(workload_id=workload_id, run=run, live=live, lines=lines)
        except RuntimeDriverError:
            pass  # the task is gone: its output is in the archive (or there was none)
    return RunOutput(workload_id=workload_id, run=run, live=False, lines=domain.logs.read(run.id))


async def follow_output(domain: Domain, run: Run) -> AsyncIterator[LogLine]:
    """Every line of the run's output, then new lines as they come, until the task ends.

    A run still waiting for its task is waited for (up to `PENDING_WAIT_SECONDS`), so
    following a job right after creating it shows its output.
    """
    deadline = asyncio.get_running_loop().time() + PENDING_WAIT_SECONDS
    while run.status == "pending" and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        async with domain.store.reading() as session:
            fresh = await session.get(Run, run.id)
        if fresh is None:
            return
        run = fresh
    if not run.logs_archived and run.task_id and domain.runtime is not None:
        try:
            async for line in domain.runtime.logs(TaskId(run.task_id), follow=True):
                yield line
            return
        except RuntimeDriverError:
            pass
    for line in domain.logs.read(run.id):
        yield line
