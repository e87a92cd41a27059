"""Firing schedules.

By default a schedule does not start a run while its previous run still runs (the fire is
skipped and noted in the status reason). A fire missed while berth was down happens once when
it comes back, because the next fire time is always computed from now.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from berth.domain.context import Domain
from berth.domain.locks import lock_owners
from berth.domain.schedules import parse_schedule
from berth.domain.workloads import new_scheduled_run, publish_changed
from berth.store.models import ACTIVE_RUN_STATUSES, Run, Workload

LIVE_SCHEDULES = (
    Workload.type == "schedule",
    Workload.deleted_at.is_(None),
    Workload.desired_state == "running",
    Workload.next_run_at.is_not(None),
)
"""The schedules that fire (`ix_workloads_next_run` orders them by their next fire)."""


async def fire_due_schedules(domain: Domain, now: datetime) -> datetime | None:
    """Start the runs of schedules that are due; return the earliest next fire time.

    The scheduler calls this on every change, so when nothing is due it costs one indexed
    read and takes no write lock."""
    earliest = await _earliest_fire(domain)
    if earliest is None or earliest > now:
        return earliest
    fired: list[Workload] = []
    async with domain.store.transaction() as session:
        # Owners first (see `locks`): a fire writes runs, and a run's row refers to its user's
        # (the insert would take a share lock on it after the schedule's, in the wrong order).
        is_due = (*LIVE_SCHEDULES, Workload.next_run_at <= now)
        owners = await lock_owners(session, Workload, *is_due)
        due = await session.scalars(
            select(Workload)
            .where(*is_due, Workload.user_id.in_(sorted(owners)))  # (due since: next call)
            .order_by(Workload.id)
            .with_for_update()  # a fire and a concurrent change of the schedule follow each other
            .execution_options(populate_existing=True)
        )
        for workload in due:
            assert workload.schedule_expr is not None
            busy = await session.scalar(
                select(Run.id)
                .where(Run.workload_id == workload.id, Run.status.in_(ACTIVE_RUN_STATUSES))
                .limit(1)
            )
            user = owners.get(workload.user_id)
            if busy:
                workload.status_reason = (
                    f"skipped the fire at {now:%Y-%m-%d %H:%M:%S}Z: the previous run still runs"
                )
            elif user is None or user.credits_micro <= 0:
                workload.status_reason = "skipped a fire: no credits left"
            else:
                session.add(new_scheduled_run(workload, now=now))
                workload.status_reason = None
                fired.append(workload)
            workload.next_run_at = parse_schedule(workload.schedule_expr).next_after(now)
    for workload in fired:
        publish_changed(domain, workload)
    return await _earliest_fire(domain)


async def _earliest_fire(domain: Domain) -> datetime | None:
    async with domain.store.reading() as session:
        return await session.scalar(
            select(Workload.next_run_at)
            .where(*LIVE_SCHEDULES)
            .order_by(Workload.next_run_at)
            .limit(1)
        )
