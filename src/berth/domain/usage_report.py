"""What a user spent: the credit balance, credits per day and per workload, and the runs
behind them, for the usage page. Three grouped queries, whatever the number of workloads.

A run's credits count on the day it started (or was created, if it never started), though
a long run accrues them over several days. Workloads already purged after deletion take
their runs with them, so their credits leave the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import BigInteger, cast, func, select

from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.errors import NotFound
from berth.store.models import Run, User, Workload, credits_of

MAX_DAYS = 366
RUNS_SHOWN = 100


@dataclass(frozen=True)
class RunCost:
    run_id: str
    workload_id: str
    workload_name: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    credits: float


@dataclass(frozen=True)
class UsageReport:
    balance: float
    days: list[tuple[date, float]]
    """Every day of the period, oldest first, with the credits of runs started that day."""
    workloads: list[tuple[str, str, float]]
    """(id, name, credits) of the period, the most spent first."""
    runs: list[RunCost]
    """The period's latest runs that cost anything, newest first (at most `RUNS_SHOWN`)."""


async def usage_report(domain: Domain, actor: Actor, *, days: int) -> UsageReport:
    days = max(1, min(days, MAX_DAYS))
    today = domain.clock.now().date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, tzinfo=UTC)
    began = func.coalesce(Run.started_at, Run.created_at)
    mine = (Workload.user_id == actor.user_id, began >= since, Run.credits_micro > 0)
    spent = cast(func.sum(Run.credits_micro), BigInteger)  # PostgreSQL's sum is a numeric
    async with domain.store.reading(snapshot=True) as session:  # totals that agree
        balance = await session.scalar(select(User.credits_micro).where(User.id == actor.user_id))
        if balance is None:
            raise NotFound(f"user {actor.user_id} not found")
        day = func.date(began)
        per_day = await session.execute(
            select(day, spent)
            .join(Workload, Workload.id == Run.workload_id)
            .where(*mine)
            .group_by(day)
        )
        per_workload = await session.execute(
            select(Workload.id, Workload.name, spent)
            .join(Workload, Workload.id == Run.workload_id)
            .where(*mine)
            .group_by(Workload.id, Workload.name)
            .order_by(spent.desc())
        )
        latest = await session.execute(
            select(
                Run.id,
                Run.workload_id,
                Workload.name,
                Run.status,
                Run.started_at,
                Run.finished_at,
                Run.credits_micro,
            )
            .join(Workload, Workload.id == Run.workload_id)
            .where(*mine)
            .order_by(began.desc())
            .limit(RUNS_SHOWN)
        )
        by_day = {str(when): credits_of(total or 0) for when, total in per_day}
        return UsageReport(
            balance=credits_of(balance),
            days=[
                (first + timedelta(days=n), by_day.get(str(first + timedelta(days=n)), 0.0))
                for n in range(days)
            ],
            workloads=[(wid, name, credits_of(total or 0)) for wid, name, total in per_workload],
            runs=[RunCost(*row[:-1], credits=credits_of(row[-1])) for row in latest],
        )
