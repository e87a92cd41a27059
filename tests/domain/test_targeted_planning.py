"""Planning one changed workload's runs leaves every other workload to the full pass."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from berth.domain import lifecycle, workloads
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.schemas.workloads import WorkloadCreate
from berth.store.models import Run


async def runs_of(domain: Domain, workload_id: str) -> list[Run]:
    async with domain.store.reading() as session:
        return list(await session.scalars(select(Run).where(Run.workload_id == workload_id)))


async def test_converging_one_workload_plans_only_its_runs(domain: Domain, actor: Actor) -> None:
    def service(name: str) -> WorkloadCreate:
        return WorkloadCreate(name=name, type="service", image="img", replicas=2)

    changed = (await workloads.create_workload(domain, actor, service("a"))).workload
    other = (await workloads.create_workload(domain, actor, service("b"))).workload

    await lifecycle.converge_desired_runs(domain, datetime.now(UTC), workload_id=changed.id)
    assert sorted(run.slot for run in await runs_of(domain, changed.id)) == [0, 1]
    assert await runs_of(domain, other.id) == []

    await lifecycle.converge_desired_runs(domain, datetime.now(UTC), workload_id=changed.id)
    assert len(await runs_of(domain, changed.id)) == 2  # planned once, not again

    await lifecycle.converge_desired_runs(domain, datetime.now(UTC))
    assert sorted(run.slot for run in await runs_of(domain, other.id)) == [0, 1]
