"""The usage report: credits per day and per workload, and the runs behind them, from the
runs' own figures, on either store."""

from __future__ import annotations

from datetime import timedelta

from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.usage_report import usage_report
from berth.store.models import Run
from tests.support.runs import a_job, add_runs


async def test_credits_are_grouped_by_the_day_a_run_began_and_by_workload(
    domain: Domain, actor: Actor
) -> None:
    greeter = await a_job(domain, actor, "greeter")
    nightly = await a_job(domain, actor, "nightly")
    await add_runs(domain, actor, greeter, 3)  # 7 micro-credits each
    await add_runs(domain, actor, nightly, 2, days_ago=2)
    [dear] = await add_runs(domain, actor, nightly, 1)  # a dearer run, started a minute ago
    async with domain.store.transaction() as session:
        run = await session.get(Run, dear)
        assert run is not None
        run.credits_micro = 1_000_000
        run.started_at = domain.clock.now() - timedelta(minutes=1)

    report = await usage_report(domain, actor, days=7)

    today = domain.clock.now().date()
    by_day = dict(report.days)
    assert len(report.days) == 7 and report.days[-1][0] == today
    assert by_day[today] == (3 * 7 + 1_000_000) / 1_000_000
    assert by_day[today - timedelta(days=2)] == 2 * 7 / 1_000_000
    assert [(name, credits) for _id, name, credits in report.workloads] == [
        ("nightly", (2 * 7 + 1_000_000) / 1_000_000),
        ("greeter", 3 * 7 / 1_000_000),
    ]
    assert report.runs[0].run_id == dear and report.runs[0].credits == 1.0
    assert len(report.runs) == 6
