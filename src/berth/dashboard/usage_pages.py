"""Usage: the credit balance, a chart of credits per day and per workload, and the runs
behind them (the domain's `usage_report`). The charts are bars drawn with CSS from the
same figures as the tables under them, so they need no chart library and read the same to
a screen reader."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from berth.dashboard.render import page
from berth.dashboard.session import domain_of, viewer
from berth.domain.usage_report import usage_report

router = APIRouter(include_in_schema=False)
PERIODS = (7, 14, 30, 90)


@router.get("/usage")
async def usage(request: Request, days: int = 14) -> Response:
    signed_in = await viewer(request)
    days = days if days in PERIODS else 14
    report = await usage_report(domain_of(request), signed_in.actor, days=days)
    most_day = max((credits for _day, credits in report.days), default=0.0) or 1.0
    most_workload = max((credits for *_w, credits in report.workloads), default=0.0) or 1.0
    return await page(
        request,
        "usage.html",
        signed_in,
        report=report,
        days=days,
        periods=PERIODS,
        most_day=most_day,
        most_workload=most_workload,
        total=sum(credits for _day, credits in report.days),
    )
