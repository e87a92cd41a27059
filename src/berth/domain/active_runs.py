"""What the controllers read of the store: the runs they act on, and what acting on one needs.

The reconciler acts on the engine outside any transaction; each function here is one short
read, and what it returns may be stale by the time the caller acts on it. Changes go through
`lifecycle`, whose writes are guarded by what they expect, so acting on a stale read changes
nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from berth.domain.context import Domain
from berth.domain.planning import REPLICATED_TYPES, plan_service, workload_status
from berth.domain.secrets import decrypted_environment
from berth.domain.statuses import latest_runs
from berth.store.models import ACTIVE_RUN_STATUSES, Run, Workload


@dataclass(frozen=True)
class ActiveRuns:
    """Every active (pending or running) run, and the workloads a pass acts for: those of
    the active runs, deleted ones included (a deleted workload's runs are still active
    until their tasks are gone), and those in a crash back-off (a replacement is due when
    it ends). Idle workloads (a schedule between fires) are not read: a pass costs what is
    running, not what exists."""

    runs: list[Run]
    workloads: dict[str, Workload]


async def active_runs(domain: Domain) -> ActiveRuns:
    """The active runs and their workloads (see `ActiveRuns`), read together (one
    snapshot)."""
    async with domain.store.reading() as session:
        runs = list(await session.scalars(select(Run).where(Run.status.in_(ACTIVE_RUN_STATUSES))))
        acted_for = or_(
            Workload.id.in_({run.workload_id for run in runs}),
            Workload.backoff_until.is_not(None),
        )
        workloads = {w.id: w for w in await session.scalars(select(Workload).where(acted_for))}
    return ActiveRuns(runs=runs, workloads=workloads)


async def get_run(domain: Domain, run_id: str) -> Run | None:
    """The run as stored now, or None if there is no such run (any more)."""
    if not run_id:
        return None
    async with domain.store.reading() as session:
        return await session.get(Run, run_id)


async def run_is_active(domain: Domain, run_id: str) -> bool:
    """Whether the run is still pending or running."""
    run = await get_run(domain, run_id)
    return run is not None and run.status in ACTIVE_RUN_STATUSES


async def leaves_work_for_a_pass(domain: Domain, run: Run) -> bool:
    """Whether a run that just started leaves its workload something only a pass does: the
    run itself was asked to stop while it launched, or runs of an older generation still
    serve until it runs (a roll: they are stopped once their replacements run)."""
    async with domain.store.reading() as session:
        stop_requested = await session.scalar(select(Run.stop_requested).where(Run.id == run.id))
        if stop_requested:
            return True
        if run.generation <= 1:
            return False
        older = await session.scalar(
            select(Run.id)
            .where(
                Run.workload_id == run.workload_id,
                Run.status.in_(ACTIVE_RUN_STATUSES),
                Run.generation < run.generation,
                Run.stop_requested.is_(False),
            )
            .limit(1)
        )
        return older is not None


def awaits_launch(run: Run) -> bool:
    """Whether `run` waits for its task to be started (made first unless `task_id` says a
    task was made for it already): pending, neither a standby nor asked to stop."""
    return run.status == "pending" and not run.standby and not run.stop_requested


@dataclass(frozen=True)
class WorkloadLaunch:
    """One live workload's active runs, with the environment its new tasks start with."""

    workload: Workload
    runs: list[Run]
    env: dict[str, str]
    skipped: bool = False
    """Whether runs were left out because an operation was under way on them."""


async def workload_launch(
    domain: Domain, workload_id: str, *, skip: Collection[str] = ()
) -> WorkloadLaunch | None:
    """The workload's active runs but those whose ids are in `skip` at the moment they are
    read (a live collection: runs someone else acts on), and its task environment (secrets
    decrypted; empty when no run needs a task made, so a change that launches nothing
    neither reads nor decrypts the secrets); None if the workload does not exist or is
    deleted."""
    async with domain.store.reading() as session:
        workload = await session.get(Workload, workload_id)
        if workload is None or workload.deleted_at is not None:
            return None
        read = await _active_runs(session, workload_id)
        env = await _launch_environment(domain, session, workload, read)
    return _launch(workload, read, env, skip)


async def _active_runs(session: AsyncSession, workload_id: str) -> list[Run]:
    return list(
        await session.scalars(
            select(Run).where(Run.workload_id == workload_id, Run.status.in_(ACTIVE_RUN_STATUSES))
        )
    )


async def _launch_environment(
    domain: Domain, session: AsyncSession, workload: Workload, runs: Sequence[Run]
) -> dict[str, str]:
    """The task environment when one of `runs` needs a task made, else empty (a change
    that launches nothing neither reads nor decrypts the secrets)."""
    if any(awaits_launch(run) and not run.task_id for run in runs):
        return await decrypted_environment(domain, session, workload)
    return {}


def _launch(
    workload: Workload, read: Sequence[Run], env: dict[str, str], skip: Collection[str]
) -> WorkloadLaunch:
    """The launch of `read` but the runs in `skip`: called after the read's last await, so
    an operation that started meanwhile is left alone."""
    runs = [run for run in read if run.id not in skip]
    return WorkloadLaunch(workload=workload, runs=runs, env=env, skipped=len(runs) < len(read))


async def task_environment(domain: Domain, workload: Workload) -> dict[str, str]:
    """The environment a task of `workload` starts with: `env`, then secrets over it."""
    async with domain.store.reading() as session:
        return await decrypted_environment(domain, session, workload)


@dataclass(frozen=True)
class ChangedWorkload:
    """What the reconciler needs of a workload a change named, read once: what to launch,
    whether its run plan would change anything, whether its status is stale."""

    launch: WorkloadLaunch | None
    """As `workload_launch` returns it (None: no such workload, or a deleted one)."""
    plan_needed: bool
    """A planned type (`REPLICATED_TYPES`) whose plan creates, promotes or stops a run: the
    caller plans (`lifecycle.converge_desired_runs`) and reads the launch again."""
    status_stale: bool
    """Its runs now derive another status than the stored one."""


async def changed_workload(
    domain: Domain, workload_id: str, *, skip: Collection[str] = ()
) -> ChangedWorkload:
    """One read for a change: the workload, its active runs and the run its status speaks
    of. Most changes (a secret set, a service created or scaled with no replicas) plan
    nothing, launch nothing and leave the status as the change derived it; for them this is
    all the reconciler reads, where planning, launching and refreshing the status read the
    workload and its runs three times over. `skip` as for `workload_launch`."""
    async with domain.store.reading() as session:
        workload = await session.get(Workload, workload_id)
        if workload is None:
            return ChangedWorkload(launch=None, plan_needed=False, status_stale=False)
        read = await _active_runs(session, workload_id)
        latest = (await latest_runs(session, [workload_id])).get(workload_id)
        now = domain.clock.now()
        plan_needed = (
            workload.type in REPLICATED_TYPES
            and plan_service(workload, read, now).changes_anything()
        )
        status = workload_status(workload, read, latest, now)
        status_stale = (status.status, status.reason) != (workload.status, workload.status_reason)
        if workload.deleted_at is not None:
            return ChangedWorkload(launch=None, plan_needed=plan_needed, status_stale=status_stale)
        # A plan that changes runs is followed by a `workload_launch` of its own.
        env = {} if plan_needed else await _launch_environment(domain, session, workload, read)
    launch = _launch(workload, read, env, skip)
    return ChangedWorkload(launch=launch, plan_needed=plan_needed, status_stale=status_stale)
