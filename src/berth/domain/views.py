"""Read models: a workload with what its readers want next to it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from berth.domain.context import Domain
from berth.store.models import Run, Secret, Workload

RECENT_RUNS = 10


@dataclass(frozen=True)
class WorkloadView:
    workload: Workload
    recent_runs: list[Run]
    secret_keys: list[str]
    running_tasks: int
    url: str | None
    """The public URL (services with a port); None ("headless") otherwise."""


def public_url(domain: Domain, workload: Workload) -> str | None:
    """`http://<id>.<public domain>[:port]` for a service with a port, served by the
    gateway; None ("headless") for everything else."""
    if workload.type != "service" or workload.port is None:
        return None
    port = domain.containers.gateway_port
    suffix = "" if port == 80 else f":{port}"
    return f"http://{workload.id}.{domain.containers.public_domain}{suffix}"


async def load_view(domain: Domain, session: AsyncSession, workload: Workload) -> WorkloadView:
    (view,) = await load_views(domain, session, [workload])
    return view


async def load_views(
    domain: Domain, session: AsyncSession, workloads: list[Workload]
) -> list[WorkloadView]:
    """The views of `workloads`, in their order, from three queries whatever their number
    (a list of workloads must not cost queries per workload)."""
    if not workloads:
        return []
    ids = [w.id for w in workloads]
    rank = (
        func.row_number()
        .over(partition_by=Run.workload_id, order_by=Run.created_at.desc())
        .label("rank")
    )
    ranked = (
        select(Run.id.label("run_id"), rank)
        .where(Run.workload_id.in_(ids), Run.standby.is_(False))
        .subquery()
    )
    runs: dict[str, list[Run]] = {}
    for run in await session.scalars(
        select(Run)
        .join(ranked, Run.id == ranked.c.run_id)
        .where(ranked.c.rank <= RECENT_RUNS)
        .order_by(Run.created_at.desc())
    ):
        runs.setdefault(run.workload_id, []).append(run)
    keys: dict[str, list[str]] = {}
    secrets = select(Secret.workload_id, Secret.key).where(Secret.workload_id.in_(ids))
    for workload_id, key in await session.execute(secrets.order_by(Secret.key)):
        keys.setdefault(workload_id, []).append(key)
    counts = await session.execute(
        select(Run.workload_id, func.count())
        .where(Run.workload_id.in_(ids), Run.status == "running")
        .group_by(Run.workload_id)
    )
    running: dict[str, int] = {workload_id: count for workload_id, count in counts}
    return [
        WorkloadView(
            workload=workload,
            recent_runs=runs.get(workload.id, []),
            secret_keys=keys.get(workload.id, []),
            running_tasks=running.get(workload.id, 0),
            url=public_url(domain, workload),
        )
        for workload in workloads
    ]
