"""What the HTTP gateway reads of the store to route requests: the workloads it can route to,
their active runs (whose tasks are the upstreams) and containers' ingress rules.

The gateway builds its table from these records and the engine's running tasks; it reads
the whole set on each refresh, and one workload's when a request names a workload its table
does not know yet (one indexed read, so a service created a moment ago is served at once).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from berth.domain.context import Domain
from berth.store.models import ACTIVE_RUN_STATUSES, IngressRule, Run, Workload


@dataclass(frozen=True)
class Routable:
    workloads: list[Workload]
    """Live (not deleted) services with a `port`, and live containers."""
    active_runs: list[Run]
    """Their pending and running runs: a task the reconciler has just started is routable
    before its run is recorded as running."""
    rules: list[IngressRule]
    """The containers' ingress rules."""


async def routable(domain: Domain, *, workload_id: str | None = None) -> Routable:
    """Every routable workload with its active runs and rules, read together; with
    `workload_id`, only that workload's (nothing if it is not routable)."""
    workloads_query = select(Workload).where(
        Workload.deleted_at.is_(None),
        ((Workload.type == "service") & Workload.port.is_not(None))
        | (Workload.type == "container"),
    )
    if workload_id is not None:
        workloads_query = workloads_query.where(Workload.id == workload_id)
    async with domain.store.reading() as session:
        workloads = list(await session.scalars(workloads_query))
        if not workloads:
            return Routable(workloads=[], active_runs=[], rules=[])
        ids = [w.id for w in workloads]
        runs = list(
            await session.scalars(
                select(Run).where(Run.workload_id.in_(ids), Run.status.in_(ACTIVE_RUN_STATUSES))
            )
        )
        rules = list(
            await session.scalars(select(IngressRule).where(IngressRule.workload_id.in_(ids)))
        )
    return Routable(workloads=workloads, active_runs=runs, rules=rules)
