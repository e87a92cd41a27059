"""`GET /v1/usage`: the caller's balance, credits per day and per workload, and the runs
behind them (the report the dashboard's usage page shows). A read: never gated."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from berth.api.deps import DomainDep, company_actor
from berth.api.responses import workload_errors
from berth.api.routing import PrefixedRouter
from berth.domain.auth import Actor
from berth.domain.usage_report import MAX_DAYS, usage_report
from berth.schemas.usage import UsageDay, UsageOut, UsageRun, UsageWorkload

router = PrefixedRouter(prefix="/v1/usage", tags=["usage"], responses=workload_errors(401, 422))

ActorDep = Annotated[Actor, Depends(company_actor)]
DaysQuery = Annotated[
    int, Query(ge=1, le=MAX_DAYS, description=f"The period: the last 1 to {MAX_DAYS} days.")
]


@router.get("", response_model=UsageOut, summary="Balance and credits spent, by day and workload")
async def get_usage(domain: DomainDep, actor: ActorDep, days: DaysQuery = 30) -> UsageOut:
    report = await usage_report(domain, actor, days=days)
    return UsageOut(
        balance=report.balance,
        days=[UsageDay(date=day, credits=credits) for day, credits in report.days],
        workloads=[
            UsageWorkload(workload_id=wid, name=name, credits=credits)
            for wid, name, credits in report.workloads
        ],
        runs=[
            UsageRun(
                run_id=run.run_id,
                workload_id=run.workload_id,
                workload_name=run.workload_name,
                status=run.status,
                started_at=run.started_at,
                finished_at=run.finished_at,
                credits=run.credits,
            )
            for run in report.runs
        ],
    )
