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
    runs = list(
        await session.scalars(
            select(Run)
            .where(Run.workload_id == workload.id, Run.standby.is_(False))
            .order_by(Run.created_at.desc())
            .limit(RECENT_RUNS)
        )
    )
    keys = list(
        await session.scalars(
            select(Secret.key).where(Secret.workload_id == workload.id).order_by(Secret.key)
        )
    )
    running = await session.scalar(
        select(func.count())
        .select_from(Run)
        .where(Run.workload_id == workload.id, Run.status == "running")
    )
    return WorkloadView(
        workload=workload,
        recent_runs=runs,
        secret_keys=keys,
        running_tasks=running or 0,
        url=public_url(domain, workload),
    )
