"""How runs move through their lives, as the controllers observe the engine.

Controllers do engine I/O outside any transaction and then call one of these functions, which
applies the observation in a short transaction guarded by what it expects (a run still
`pending` or still active), so a stale or repeated observation changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from berth.domain.billing import accrue_run_usage, settle_run_usage
from berth.domain.context import Domain
from berth.domain.events import Event
from berth.domain.ledger import post
from berth.domain.locks import lock_owner_then, lock_owners, locked
from berth.domain.planning import REPLICATED_TYPES, crash_backoff, plan_service, ran_long_enough
from berth.domain.statuses import derive_statuses, publish_statuses
from berth.domain.workloads import new_replica_run
from berth.store.models import (
    ACTIVE_RUN_STATUSES,
    ContainerSshKey,
    IngressRule,
    Run,
    Secret,
    ShellSession,
    Workload,
)


@dataclass(frozen=True)
class RunResult:
    """What the engine said about a task that ended (or never started)."""

    exit_code: int | None
    finished_at: datetime
    oom_killed: bool = False
    error: str | None = None
    logs_archived: bool = False
    started_at: datetime | None = None
    """The engine's stamp of the task's start, when it started (it overrides the one
    recorded when the run was seen running, which may predate the engine's final word)."""


REFRESH_BATCH = 500
"""Workloads whose statuses one read of a status refresh derives."""


async def converge_desired_runs(
    domain: Domain, now: datetime, *, workload_id: str | None = None
) -> None:
    """Create and stop runs so each service matches its replicas; time out long runs.
    With `workload_id`, only that workload's runs (a change to it is launched at once).

    The plan is made under a read first and written only when it changes something, so an
    idle pass, or a change that plans nothing (a service created or scaled with no
    replicas, a secret set while nothing runs), takes no lock and no write transaction.
    Callers must not plan concurrently (the reconciler serializes its calls): two plans
    could each fill the same empty slot.
    """
    async with domain.store.reading() as session:
        if not await _plan_runs(session, now, workload_id, domain.clock.now):
            return
    async with domain.store.transaction() as session:
        # Owners first (see `locks`): a plan writes runs of any number of users.
        scope = [] if workload_id is None else [Workload.id == workload_id]
        await lock_owners(session, Workload, *scope)
        await _plan_runs(session, now, workload_id, domain.clock.now)


async def _plan_runs(
    session: AsyncSession, now: datetime, workload_id: str | None, clock: Callable[[], datetime]
) -> bool:
    """Apply the run plan to the session's objects; True if anything changed.

    A run it creates is stamped no earlier than the read it was planned from (`clock` after
    the reads, or `now` if later): a run made for a change (a secret set) is never dated
    before that change, however long the plan waited for its turn."""
    active_query = select(Run).where(Run.status.in_(ACTIVE_RUN_STATUSES))
    # A job or schedule without an active run has nothing to plan (no slot, nothing to
    # stop), so a full plan reads only the replicated types and workloads with active runs:
    # thousands of idle schedules cost it nothing.
    workloads_query = select(Workload).where(
        or_(
            Workload.type.in_(REPLICATED_TYPES),
            Workload.id.in_(select(Run.workload_id).where(Run.status.in_(ACTIVE_RUN_STATUSES))),
        )
    )
    if workload_id is not None:
        workloads_query = select(Workload).where(Workload.id == workload_id)
        active_query = active_query.where(Run.workload_id == workload_id)
    workloads = list(await session.scalars(workloads_query))
    active = list(await session.scalars(active_query))
    now = max(now, clock())
    by_workload: dict[str, list[Run]] = {}
    for run in active:
        by_workload.setdefault(run.workload_id, []).append(run)
    runs_by_id = {run.id: run for run in active}
    changed = False
    for workload in workloads:
        runs = by_workload.get(workload.id, [])
        stops: list[tuple[Run, str]] = []
        if workload.type in REPLICATED_TYPES:
            plan = plan_service(workload, runs, now)
            for run_id in plan.promote:
                promoted = runs_by_id[run_id]
                promoted.standby, promoted.created_at = False, now
                changed = True
            for slot in plan.create_slots:
                session.add(new_replica_run(workload, slot, now=now))
                changed = True
            if plan.create_standby:
                session.add(new_replica_run(workload, 0, now=now, standby=True))
                changed = True
            stops = [(runs_by_id[run_id], reason) for run_id, reason in plan.stop]
        elif workload.deleted_at is not None:
            stops = [(run, "deleted") for run in runs if not run.stop_requested]
        elif workload.timeout_seconds is not None:
            stops = [
                (run, "timed_out") for run in runs if _timed_out(run, workload.timeout_seconds, now)
            ]
        for run, reason in stops:
            run.stop_requested, run.stop_reason = True, reason
            changed = True
    return changed


def _timed_out(run: Run, timeout_seconds: int, now: datetime) -> bool:
    return (
        run.status == "running"
        and not run.stop_requested
        and run.started_at is not None
        and (now - run.started_at).total_seconds() > timeout_seconds
    )


async def mark_standby_prepared(domain: Domain, run_id: str, *, task_id: str) -> None:
    """Record the created (not started) task of a standby run, so a wake can start it
    without looking for it first."""
    async with domain.store.transaction() as session:
        _, run = await lock_owner_then(session, Run, run_id)
        if run is not None and run.status == "pending":
            run.task_id = task_id


async def mark_run_started(
    domain: Domain, run_id: str, *, task_id: str, started_at: datetime
) -> bool:
    """Record that a pending run's task runs; False if the run was no longer pending."""
    async with domain.store.transaction() as session:
        _, run = await lock_owner_then(session, Run, run_id)
        if run is None or run.status != "pending":
            return False
        run.status = "running"
        run.task_id = task_id
        run.started_at = started_at
        run.metered_until = started_at
        workload = await locked(session, Workload, run.workload_id)
        changed = workload is not None and await _refresh_status(session, workload, started_at)
    _publish_run(domain, run, "run.started")
    if changed and workload is not None:
        publish_statuses(domain, [workload])
    return True


async def record_run_result(
    domain: Domain, run_id: str, result: RunResult, *, backoff_max: float
) -> bool:
    """Write a run's final status, times (the engine's), exit code and usage (settled, at
    least `billing.MINIMUM_BILLED_SECONDS` for a task that started); False if it was
    already finished.

    A service task that ended without being asked to is a crash: the workload backs off
    before its replacement starts (1 s, 2 s, 4 s... up to `backoff_max`).
    """
    async with domain.store.transaction() as session:
        user, run = await lock_owner_then(session, Run, run_id)
        if run is None or run.status not in ACTIVE_RUN_STATUSES:
            return False
        workload = await locked(session, Workload, run.workload_id)
        if result.started_at is not None:
            run.started_at = result.started_at
        if user is not None:
            charged = settle_run_usage(run, finished_at=result.finished_at, pricing=domain.pricing)
            post(session, user, -charged, kind="usage", run_id=run.id)
        run.exit_code = result.exit_code
        run.finished_at = result.finished_at
        run.logs_archived = result.logs_archived
        run.status, run.status_reason = _final_status(run, result)
        changed = False
        if workload is not None:
            if workload.type in ("service", "container") and not run.stop_requested:
                _record_crash(workload, run, result.finished_at, backoff_max)
            await session.flush()
            changed = await _refresh_status(session, workload, domain.clock.now())
    _publish_run(domain, run, "run.finished")
    if changed and workload is not None:
        publish_statuses(domain, [workload])
    return True


def _final_status(run: Run, result: RunResult) -> tuple[str, str | None]:
    if result.oom_killed:
        return "failed", f"out of memory: the task exceeded its {run.memory_mb} MB limit"
    if result.error:
        return "failed", result.error
    if run.stop_requested:
        if run.stop_reason == "timed_out":
            return "timed_out", "stopped after timeout_seconds"
        return "stopped", f"stopped ({run.stop_reason})" if run.stop_reason else "stopped"
    if result.exit_code == 0:
        return "succeeded", None
    hint = EXIT_CODE_HINTS.get(result.exit_code or 0, "")
    return "failed", f"exited with code {result.exit_code}{hint}"


EXIT_CODE_HINTS = {
    126: " (the command is not executable)",
    127: " (command not found in the image; see the run's logs)",
    137: " (killed)",
}


def _record_crash(workload: Workload, run: Run, finished_at: datetime, backoff_max: float) -> None:
    if ran_long_enough(run, finished_at):
        workload.consecutive_failures = 1
    else:
        workload.consecutive_failures += 1
    delay = crash_backoff(workload.consecutive_failures, max_seconds=backoff_max)
    workload.backoff_until = finished_at + delay


async def mark_logs_archived(domain: Domain, run_id: str) -> None:
    async with domain.store.transaction() as session:
        run = await session.get(Run, run_id)
        if run is not None:
            run.logs_archived = True


async def refresh_workload_statuses(
    domain: Domain, now: datetime, workload_ids: Collection[str]
) -> None:
    """Recompute the statuses of the workloads named from their runs, `REFRESH_BATCH` to a
    read; publish the ones that changed. A pass does not refresh every workload: it
    refreshes those it acts on with this and sweeps the rest a slice at a time
    (`refresh_status_slice`)."""
    ids = sorted(workload_ids)
    for start in range(0, len(ids), REFRESH_BATCH):
        chunk = ids[start : start + REFRESH_BATCH]
        await _refresh_batch(domain, now, select(Workload).where(Workload.id.in_(chunk)))
        await asyncio.sleep(0)


async def refresh_status_slice(domain: Domain, now: datetime, *, after: str, limit: int) -> str:
    """Refresh the statuses of up to `limit` workloads whose ids follow `after`, in reads of
    `REFRESH_BATCH` with a turn of the event loop between them (SQLite's statements run on
    the loop: 10,000 workloads read at once held the API's requests for a second or more).
    Returns where the next slice starts, or "" once the last workload was refreshed."""
    left = limit
    while left > 0:
        size = min(left, REFRESH_BATCH)
        batch = select(Workload).where(Workload.id > after).order_by(Workload.id).limit(size)
        last, count = await _refresh_batch(domain, now, batch)
        if last is None or count < size:
            return ""
        after, left = last, left - count
        await asyncio.sleep(0)
    return after


async def _refresh_batch(
    domain: Domain, now: datetime, query: Select[Workload]
) -> tuple[str | None, int]:
    """Refresh the statuses of the workloads `query` reads; the greatest id read (None
    when it read none) and how many it read."""
    async with domain.store.reading() as session:
        workloads = list(await session.scalars(query))
        stale = [w.id for w in await derive_statuses(session, workloads, now)]
    last, count = max((w.id for w in workloads), default=None), len(workloads)
    if not stale:
        return last, count
    async with domain.store.transaction() as session:
        await lock_owners(session, Workload, Workload.id.in_(stale))
        workloads = list(
            await session.scalars(
                select(Workload)
                .where(Workload.id.in_(stale))
                .order_by(Workload.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        )
        changed = await derive_statuses(session, workloads, now)
    publish_statuses(domain, changed)
    return last, count


async def _refresh_status(session: AsyncSession, workload: Workload, now: datetime) -> bool:
    """Derive one workload's status from its runs; True if it changed."""
    return bool(await derive_statuses(session, [workload], now))


@dataclass(frozen=True)
class Purged:
    run_ids: list[str]
    """Runs whose archived output can go."""
    idle_user_ids: list[str]
    """Users left with no workload at all (their network can go)."""
    container_ids: list[str]
    """Purged containers (their volumes can go)."""


PURGE_BATCH = 500
"""Deleted workloads dropped by one transaction at most: its statements and the owners' row
locks it holds stay short however many workloads wait (the next pass takes the rest)."""

_OWNED_BY_WORKLOAD = (Run, Secret, ContainerSshKey, IngressRule, ShellSession)
"""The rows that go with a dropped workload (each has a `workload_id`)."""


async def purge_deleted_workloads(domain: Domain, *, keep: Collection[str] = ()) -> Purged:
    """Drop deleted workloads none of whose runs are active, with their runs and secrets;
    workloads named in `keep` (their tasks are still on the engine) wait for a later call.

    A fixed number of statements whatever the count (the rows of up to `PURGE_BATCH`
    workloads go table by table), so the owners' rows are locked briefly: every user with a
    deleted workload waits for this transaction, and a statement per workload and table held
    all of them for as long as the deletions took."""
    async with domain.store.reading() as session:
        pending = await session.scalar(
            select(Workload.id).where(Workload.deleted_at.is_not(None)).limit(1)
        )
    if pending is None:
        return Purged(run_ids=[], idle_user_ids=[], container_ids=[])
    async with domain.store.transaction() as session:
        await lock_owners(session, Workload, Workload.deleted_at.is_not(None))
        idle = ~exists().where(Run.workload_id == Workload.id, Run.status.in_(ACTIVE_RUN_STATUSES))
        deleted = {
            workload_id: (user_id, kind)
            for workload_id, user_id, kind in await session.execute(
                select(Workload.id, Workload.user_id, Workload.type)
                .where(Workload.deleted_at.is_not(None), idle)
                .order_by(Workload.id)
                .limit(PURGE_BATCH + len(keep))
            )
            if workload_id not in keep
        }
        purged = sorted(deleted)[:PURGE_BATCH]
        if not purged:
            return Purged(run_ids=[], idle_user_ids=[], container_ids=[])
        run_ids = list(await session.scalars(select(Run.id).where(Run.workload_id.in_(purged))))
        for model in _OWNED_BY_WORKLOAD:
            await session.execute(delete(model).where(model.workload_id.in_(purged)))
        await session.execute(delete(Workload).where(Workload.id.in_(purged)))
        owners = {deleted[workload_id][0] for workload_id in purged}
        still_owning = set(
            await session.scalars(
                select(Workload.user_id).where(Workload.user_id.in_(owners)).distinct()
            )
        )
    for workload_id in purged:
        domain.bus.publish(
            Event("workload.deleted", user_id=deleted[workload_id][0], workload_id=workload_id)
        )
    return Purged(
        run_ids=run_ids,
        idle_user_ids=sorted(owners - still_owning),
        container_ids=[w for w in purged if deleted[w][1] == "container"],
    )


async def meter_running_runs(domain: Domain, now: datetime) -> None:
    """One meter tick: accrue usage of every running task up to `now`."""
    async with domain.store.transaction() as session:
        users = await lock_owners(session, Run, Run.status == "running")
        runs = list(
            await session.scalars(
                select(Run)
                .where(Run.status == "running", Run.user_id.in_(sorted(users)))
                .order_by(Run.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        )
        for run in runs:
            user = users.get(run.user_id)
            if user is not None:
                charged = accrue_run_usage(run, until=now, pricing=domain.pricing)
                post(session, user, -charged, kind="usage", run_id=run.id)


def _publish_run(domain: Domain, run: Run, kind: str) -> None:
    domain.bus.publish(
        Event(
            kind,
            user_id=run.user_id,
            workload_id=run.workload_id,
            data={"run_id": run.id, "status": run.status},
        )
    )
