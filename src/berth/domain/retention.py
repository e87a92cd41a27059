"""Run retention: old finished runs and their archived logs go, a small batch at a time.

A schedule that fires every minute makes 43,200 runs a month. Each workload keeps at most
`keep_count` finished runs (the newest), and, when `max_age` is set, none that finished
longer ago than that. Runs still pending or running are never pruned, nor a finished run
whose output is not yet archived (its task may still be there).

Billing totals survive pruning: a run's cost was settled on its user's balance as it ran,
and each settlement is an entry of the credit ledger, which keeps the run's id and is never
pruned. What goes is the run's row (its status, exit code and usage figures) and its log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, func, or_, select

from berth.domain.context import Domain
from berth.store.models import FINISHED_RUN_STATUSES, Run

DEFAULT_BATCH = 200
"""Runs deleted per transaction: short enough that writers never wait long behind it."""


@dataclass(frozen=True)
class RunRetention:
    keep_count: int
    """Finished runs kept per workload, newest first."""
    max_age: timedelta | None = None
    """Finished runs older than this (by their finish) go, whatever their count."""
    batch: int = DEFAULT_BATCH

    @classmethod
    def of(cls, keep_count: int, max_age_days: float) -> RunRetention:
        """The retention the settings give (`max_age_days` 0: no age limit)."""
        max_age = timedelta(days=max_age_days) if max_age_days > 0 else None
        return cls(keep_count=keep_count, max_age=max_age)


async def prune_runs(domain: Domain, retention: RunRetention) -> int:
    """Delete one batch of runs past the retention and their archived logs; how many went
    (fewer than `retention.batch`: nothing more to prune now)."""
    prunable = (Run.status.in_(FINISHED_RUN_STATUSES), Run.standby.is_(False))
    settled = or_(Run.logs_archived.is_(True), Run.task_id.is_(None))
    newest_first = func.row_number().over(
        partition_by=Run.workload_id, order_by=(Run.created_at.desc(), Run.id.desc())
    )
    ranked = select(Run.id, newest_first.label("rank")).where(*prunable).subquery()
    beyond_count = select(ranked.c.id).where(ranked.c.rank > retention.keep_count)
    past: ColumnElement[bool] = Run.id.in_(beyond_count)
    if retention.max_age is not None:
        past = or_(past, Run.finished_at < domain.clock.now() - retention.max_age)
    async with domain.store.transaction() as session:
        ids = list(
            await session.scalars(
                select(Run.id).where(*prunable, settled, past).limit(retention.batch)
            )
        )
        if ids:
            await session.execute(delete(Run).where(Run.id.in_(ids)))
    for run_id in ids:
        domain.logs.delete(run_id)
    return len(ids)
