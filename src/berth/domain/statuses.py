"""A workload's status, derived from its desired state and its runs, and published.

The reconciler refreshes the statuses of the workloads a pass acts on and sweeps the rest a
slice per pass (the safety net); a use-case that changes desired state
(stop, start, scale) derives the status in its own transaction, so what the API answers and
what a read returns after it are never older than what the status events have said.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from berth.domain.context import Domain
from berth.domain.events import Event
from berth.domain.planning import workload_status
from berth.store.models import ACTIVE_RUN_STATUSES, Run, Workload


async def derive_statuses(
    session: AsyncSession, workloads: list[Workload], now: datetime
) -> list[Workload]:
    """Derive the statuses of `workloads` from their runs, with two queries whatever their
    number (a pass refreshes a thousand or more); return those whose status changed. The new
    statuses are set on the objects, so they are written with the caller's transaction."""
    if not workloads:
        return []
    ids = [w.id for w in workloads]
    active: dict[str, list[Run]] = {}
    for run in await session.scalars(
        select(Run).where(Run.workload_id.in_(ids), Run.status.in_(ACTIVE_RUN_STATUSES))
    ):
        active.setdefault(run.workload_id, []).append(run)
    latest = await latest_runs(session, ids)
    changed = []
    for workload in workloads:
        runs = active.get(workload.id, [])
        status = workload_status(workload, runs, latest.get(workload.id), now)
        if (status.status, status.reason) != (workload.status, workload.status_reason):
            workload.status, workload.status_reason = status.status, status.reason
            changed.append(workload)
    return changed


def publish_statuses(domain: Domain, workloads: Sequence[Workload]) -> None:
    """Announce the statuses of `workloads` (after their transaction committed)."""
    for workload in workloads:
        domain.bus.publish(
            Event(
                "workload.status",
                user_id=workload.user_id,
                workload_id=workload.id,
                data={"status": workload.status, "reason": workload.status_reason},
            )
        )


async def latest_runs(session: AsyncSession, workload_ids: list[str]) -> dict[str, Run]:
    """Each workload's run that its status speaks of: the last to finish, or, while none
    has, the last created (standby runs are nobody's business). One query for all."""
    finished_first = case((Run.status.in_(ACTIVE_RUN_STATUSES), 1), else_=0)
    rank = (
        func.row_number()
        .over(
            partition_by=Run.workload_id,
            order_by=(finished_first, Run.finished_at.desc(), Run.created_at.desc()),
        )
        .label("rank")
    )
    ranked = (
        select(Run.id.label("run_id"), rank)
        .where(Run.workload_id.in_(workload_ids), Run.standby.is_(False))
        .subquery()
    )
    rows = await session.scalars(
        select(Run).join(ranked, Run.id == ranked.c.run_id).where(ranked.c.rank == 1)
    )
    return {run.workload_id: run for run in rows}
