"""Run retention: each workload keeps its newest finished runs (and those within the age),
in batches; logs of pruned runs go with them; active and unarchived runs and the credit
ledger stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.retention import RunRetention, prune_runs
from berth.store.models import CreditEntry, Run
from tests.support.runs import a_job, add_runs


async def remaining(domain: Domain, workload_id: str) -> set[str]:
    async with domain.store.reading() as session:
        return set(await session.scalars(select(Run.id).where(Run.workload_id == workload_id)))


async def prune_all(domain: Domain, retention: RunRetention) -> list[int]:
    batches = []
    while not batches or batches[-1] >= retention.batch:
        batches.append(await prune_runs(domain, retention))
    return batches


async def test_each_workload_keeps_its_newest_finished_runs_and_their_logs(
    domain: Domain, actor: Actor
) -> None:
    busy = await a_job(domain, actor, "busy")
    quiet = await a_job(domain, actor, "quiet")
    old = await add_runs(domain, actor, busy, 30, days_ago=1)
    running = await add_runs(domain, actor, busy, 1, status="running")
    unarchived = await add_runs(domain, actor, busy, 1, status="failed", days_ago=2, archived=False)
    few = await add_runs(domain, actor, quiet, 3)
    async with domain.store.reading() as session:
        ledger_before = await session.scalar(select(func.sum(CreditEntry.amount_micro)))

    batches = await prune_all(domain, RunRetention(keep_count=10, batch=7))

    assert batches == [7, 7, 6]
    kept = old[-10:]
    # The unarchived finished run counts among the newest finished (it is ranked) but is
    # older than them all, so it is past the count; it stays until its output is archived.
    assert await remaining(domain, busy) == {*kept, *running, *unarchived}
    assert await remaining(domain, quiet) == set(few)
    for run_id in old[:20]:
        assert not domain.logs.exists(run_id)
    for run_id in kept + few:
        assert domain.logs.exists(run_id)
    async with domain.store.reading() as session:
        assert await session.scalar(select(func.sum(CreditEntry.amount_micro))) == ledger_before
    assert await prune_runs(domain, RunRetention(keep_count=10)) == 0


async def test_finished_runs_past_the_age_go_whatever_their_count(
    domain: Domain, actor: Actor
) -> None:
    job = await a_job(domain, actor, "aged")
    stale = await add_runs(domain, actor, job, 4, days_ago=3)
    fresh = await add_runs(domain, actor, job, 2)
    running = await add_runs(domain, actor, job, 1, status="running", days_ago=5)
    retention = RunRetention(keep_count=1000, max_age=timedelta(days=2))
    assert await prune_all(domain, retention) == [4]
    assert await remaining(domain, job) == {*fresh, *running}
    assert not any(domain.logs.exists(run_id) for run_id in stale)


def test_settings_give_the_retention() -> None:
    assert RunRetention.of(1000, 0) == RunRetention(keep_count=1000, max_age=None)
    assert RunRetention.of(5, 1.5).max_age == timedelta(days=1, hours=12)
