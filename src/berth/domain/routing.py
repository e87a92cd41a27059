"""What the HTTP gateway reads of the store to route requests: the workloads it can route to,
their active runs (whose tasks are the upstreams) and containers' ingress rules.

The gateway builds its table from these records and the engine's running tasks; it reads
the whole set on each refresh, and one workload's when a change or a request names it. Every
replica reads one workload's routes for every change of any replica, so these are prepared
reads (`Store.read`) of the few columns routing needs, and a workload that cannot be routed
to (a job, a schedule, a service without a port) costs one statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, or_, select

from berth.domain.context import Domain
from berth.store.models import ACTIVE_RUN_STATUSES, IngressRule, Run, Workload
from berth.store.reads import Reader


class RoutableWorkload(NamedTuple):
    id: str
    type: str
    port: int | None


class RoutableRun(NamedTuple):
    id: str
    workload_id: str
    paused_at: datetime | None


class RoutableRule(NamedTuple):
    workload_id: str
    port: int
    target_port: int


@dataclass(frozen=True)
class Routable:
    workloads: list[RoutableWorkload]
    """Live (not deleted) services with a `port`, and live containers."""
    active_runs: list[RoutableRun]
    """Their pending and running runs: a task the reconciler has just started is routable
    before its run is recorded as running."""
    rules: list[RoutableRule]
    """The containers' ingress rules."""


_IS_ROUTABLE = (
    Workload.deleted_at.is_(None),
    ((Workload.type == "service") & Workload.port.is_not(None)) | (Workload.type == "container"),
)
_ACTIVE = or_(*(Run.status == status for status in ACTIVE_RUN_STATUSES))
_ROUTABLE_IDS = select(Workload.id).where(*_IS_ROUTABLE)
_CONTAINER_IDS = select(Workload.id).where(Workload.type == "container", *_IS_ROUTABLE)
_WORKLOAD_COLUMNS = [getattr(Workload, name) for name in RoutableWorkload._fields]
_RUN_COLUMNS = [getattr(Run, name) for name in RoutableRun._fields]
_RULE_COLUMNS = [getattr(IngressRule, name) for name in RoutableRule._fields]

_ALL_WORKLOADS = select(*_WORKLOAD_COLUMNS).where(*_IS_ROUTABLE)
_ALL_RUNS = select(*_RUN_COLUMNS).where(_ACTIVE, Run.workload_id.in_(_ROUTABLE_IDS))
_ALL_RULES = select(*_RULE_COLUMNS).where(IngressRule.workload_id.in_(_CONTAINER_IDS))

_ONE_WORKLOAD = _ALL_WORKLOADS.where(Workload.id == bindparam("workload_id"))
_ONE_RUNS = select(*_RUN_COLUMNS).where(_ACTIVE, Run.workload_id == bindparam("workload_id"))
_ONE_RULES = select(*_RULE_COLUMNS).where(IngressRule.workload_id == bindparam("workload_id"))


async def routable(domain: Domain, *, workload_id: str | None = None) -> Routable:
    """Every routable workload with its active runs and rules, read together (one
    snapshot); with `workload_id`, only that workload's (nothing if it is not routable),
    its statements not one snapshot on PostgreSQL (a change between them is followed by
    its own event, and so by another read)."""
    if workload_id is None:
        return await domain.store.read(_read_all)
    return await domain.store.read(lambda reader: _read_one(reader, workload_id), snapshot=False)


def _read_all(reader: Reader) -> Routable:
    return Routable(
        workloads=[RoutableWorkload._make(row) for row in reader.all(_ALL_WORKLOADS, {})],
        active_runs=[RoutableRun._make(row) for row in reader.all(_ALL_RUNS, {})],
        rules=[RoutableRule._make(row) for row in reader.all(_ALL_RULES, {})],
    )


def _read_one(reader: Reader, workload_id: str) -> Routable:
    params = {"workload_id": workload_id}
    row = reader.first(_ONE_WORKLOAD, params)
    if row is None:
        return Routable(workloads=[], active_runs=[], rules=[])
    workload = RoutableWorkload._make(row)
    runs = [RoutableRun._make(row) for row in reader.all(_ONE_RUNS, params)]
    rules: list[RoutableRule] = []
    if workload.type == "container":
        rules = [RoutableRule._make(row) for row in reader.all(_ONE_RULES, params)]
    return Routable(workloads=[workload], active_runs=runs, rules=rules)
