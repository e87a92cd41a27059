"""Read models: a workload with what its readers want next to it.

A view is read through `Store.read` (one read transaction on SQLite; on PostgreSQL each
statement sees what was committed when it began) with statements built once, here, at
import: one query for the workload rows (their running-task counts as a correlated count),
one for their recent runs, one for their secret keys, whatever the number of workloads. The
rows become records (named tuples of the columns the API shows), not ORM objects: a list of
a hundred workloads must not cost a hundred identity-mapped instances.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, bindparam, func, select

from berth.domain.context import Domain
from berth.domain.errors import NotFound
from berth.domain.paging import LIMIT_PLUS_ONE, Keyset, Page, PageRequest, Position, make_page
from berth.store.models import Run, Secret, Workload, credits_of
from berth.store.reads import Reader

RECENT_RUNS = 10


class WorkloadRecord(NamedTuple):
    """The columns of a workload its API readers see (in `WORKLOAD_COLUMNS`' order)."""

    id: str
    user_id: str
    name: str
    type: str
    status: str
    status_reason: str | None
    image: str
    command: list[Any] | None
    command_text: str | None
    env: dict[str, Any]
    port: int | None
    cpu: float
    memory_mb: int
    replicas: int
    schedule_expr: str | None
    next_run_at: datetime | None
    timeout_seconds: int | None
    scale_to_zero: bool
    idle_timeout_seconds: int
    generation: int
    created_at: datetime
    updated_at: datetime


class RunRecord(NamedTuple):
    """The columns of a run its API readers see (in `RUN_COLUMNS`' order)."""

    id: str
    workload_id: str
    trigger: str
    slot: int
    status: str
    status_reason: str | None
    exit_code: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    vcpu_seconds: float
    gb_seconds: float
    credits_micro: int

    @property
    def credits(self) -> float:
        return credits_of(self.credits_micro)


WORKLOAD_COLUMNS = tuple(getattr(Workload, name) for name in WorkloadRecord._fields)
RUN_COLUMNS = tuple(getattr(Run, name) for name in RunRecord._fields)


@dataclass(frozen=True)
class WorkloadView:
    workload: WorkloadRecord
    recent_runs: list[RunRecord]
    secret_keys: list[str]
    running_tasks: int
    url: str | None
    """The public URL (services with a port); None ("headless") otherwise."""


_RUNNING_TASKS = (
    select(func.count())
    .where(Run.workload_id == Workload.id, Run.status == "running")
    .correlate(Workload)
    .scalar_subquery()
)
_VISIBLE = (Workload.deleted_at.is_(None), Workload.type != "container")
_ONE_WORKLOAD = select(*WORKLOAD_COLUMNS, _RUNNING_TASKS).where(
    Workload.id == bindparam("workload_id"), Workload.user_id == bindparam("user_id"), *_VISIBLE
)


@dataclass(frozen=True)
class WorkloadFilter:
    """What a list keeps: workloads of this type, in this status, whose name starts so."""

    type: str | None = None
    status: str | None = None
    name_prefix: str | None = None


_WORKLOAD_KEYSET = Keyset(Workload.created_at, Workload.id, newest_first=True)


@dataclass(frozen=True)
class _PageStatements:
    rows: Select[*tuple[Any, ...]]
    runs: Select[*tuple[Any, ...]]
    secrets: Select[*tuple[Any, ...]]


@cache
def _page_statements(
    by_type: bool, by_status: bool, by_prefix: bool, after: bool
) -> _PageStatements:
    """The statements of one page of a user's workloads, newest first, for one combination
    of filters (built once each: the prepared reader keeps them compiled)."""
    where: list[ColumnElement[bool]] = [Workload.user_id == bindparam("user_id"), *_VISIBLE]
    if by_type:
        where.append(Workload.type == bindparam("type"))
    if by_status:
        where.append(Workload.status == bindparam("status"))
    if by_prefix:
        where.append(Workload.name.startswith(bindparam("name_prefix")))
    if after:
        where.append(_WORKLOAD_KEYSET.after())
    order = _WORKLOAD_KEYSET.order()
    rows = (
        select(*WORKLOAD_COLUMNS, _RUNNING_TASKS)
        .where(*where)
        .order_by(*order)
        .limit(LIMIT_PLUS_ONE)
    )
    # The page's ids as a subquery: runs and secrets are selected by these, not by a list of
    # ids (whose statement would be rendered anew for every length).
    ids = select(Workload.id).where(*where).order_by(*order).limit(LIMIT_PLUS_ONE)
    return _PageStatements(
        rows=rows,
        runs=_recent_runs(Run.workload_id.in_(ids)),
        secrets=_secret_keys(Secret.workload_id.in_(ids)),
    )


def _recent_runs(workloads: ColumnElement[bool]) -> Select[*tuple[Any, ...]]:
    ranked = (
        select(
            Run.id.label("run_id"),
            func.row_number()
            .over(partition_by=Run.workload_id, order_by=Run.created_at.desc())
            .label("rank"),
        )
        .where(workloads, Run.standby.is_(False))
        .subquery()
    )
    return (
        select(*RUN_COLUMNS)
        .join(ranked, Run.id == ranked.c.run_id)
        .where(ranked.c.rank <= RECENT_RUNS)
        .order_by(Run.created_at.desc())
    )


def _secret_keys(workloads: ColumnElement[bool]) -> Select[str, str]:
    return select(Secret.workload_id, Secret.key).where(workloads).order_by(Secret.key)


_ONE_WORKLOADS_RUNS = _recent_runs(Run.workload_id == bindparam("workload_id"))
_ONE_WORKLOADS_SECRETS = _secret_keys(Secret.workload_id == bindparam("workload_id"))


def public_url(domain: Domain, workload: WorkloadRecord | Workload) -> str | None:
    """`http://<id>.<public domain>[:port]` for a service with a port, served by the
    gateway; None ("headless") for everything else."""
    if workload.type != "service" or workload.port is None:
        return None
    port = domain.containers.gateway_port
    suffix = "" if port == 80 else f":{port}"
    return f"http://{workload.id}.{domain.containers.public_domain}{suffix}"


_OWNED = select(Workload.id).where(
    Workload.id == bindparam("workload_id"), Workload.user_id == bindparam("user_id"), *_VISIBLE
)


def check_owned_workload(reader: Reader, user_id: str, workload_id: str) -> None:
    """`workloads.owned_workload`'s check inside `Store.read`: `NotFound` unless the
    workload is the user's, live and not a Containers API container."""
    if reader.first(_OWNED, {"workload_id": workload_id, "user_id": user_id}) is None:
        raise NotFound(f"workload {workload_id} not found")


def read_view(domain: Domain, reader: Reader, user_id: str, workload_id: str) -> WorkloadView:
    """The view of the user's workload `workload_id` (NotFound if it is not theirs, is
    deleted or is a Containers API container). Runs inside `Store.read`."""
    row = reader.first(_ONE_WORKLOAD, {"workload_id": workload_id, "user_id": user_id})
    if row is None:
        raise NotFound(f"workload {workload_id} not found")
    params = {"workload_id": workload_id}
    runs = reader.all(_ONE_WORKLOADS_RUNS, params)
    keys = reader.all(_ONE_WORKLOADS_SECRETS, params)
    return _assemble(domain, [row], runs, keys)[0]


def view_of_created(domain: Domain, workload: Workload, runs: Sequence[Run]) -> WorkloadView:
    """The view of a workload its create just committed, from the objects it wrote (`runs`:
    those the create made), with no read back: a new workload has no secrets yet and no
    runs but its create's."""
    record = WorkloadRecord._make(getattr(workload, name) for name in WorkloadRecord._fields)
    shown = [run for run in runs if not run.standby]
    shown.sort(key=lambda run: run.created_at, reverse=True)
    return WorkloadView(
        workload=record,
        recent_runs=[
            RunRecord._make(getattr(run, name) for name in RunRecord._fields) for run in shown
        ],
        secret_keys=[],
        running_tasks=sum(run.status == "running" for run in runs),
        url=public_url(domain, record),
    )


def read_view_page(
    domain: Domain, reader: Reader, user_id: str, request: PageRequest, keep: WorkloadFilter
) -> Page[WorkloadView]:
    """One page of the user's workloads, newest first (creation time, then id), in three
    queries whatever the page's size. Runs inside `Store.read`."""
    statements = _page_statements(
        keep.type is not None,
        keep.status is not None,
        keep.name_prefix is not None,
        request.after is not None,
    )
    params: dict[str, Any] = {"user_id": user_id}
    _WORKLOAD_KEYSET.params(request, params)
    if keep.type is not None:
        params["type"] = keep.type
    if keep.status is not None:
        params["status"] = keep.status
    if keep.name_prefix is not None:
        params["name_prefix"] = keep.name_prefix
    rows = reader.all(statements.rows, params)
    views: list[WorkloadView] = []
    if rows:
        runs = reader.all(statements.runs, params)
        keys = reader.all(statements.secrets, params)
        views = _assemble(domain, rows, runs, keys)
    return make_page(WORKLOAD_LIST, views, request.limit, _position)


WORKLOAD_LIST = "workloads"
"""The name a workload list's cursors carry."""


def _position(view: WorkloadView) -> Position:
    return Position(created_at=view.workload.created_at, id=view.workload.id)


def _assemble(
    domain: Domain,
    rows: Sequence[Sequence[Any]],
    run_rows: Iterable[Sequence[Any]],
    key_rows: Iterable[Sequence[Any]],
) -> list[WorkloadView]:
    runs: dict[str, list[RunRecord]] = {}
    for run_row in run_rows:
        run = RunRecord._make(run_row)
        runs.setdefault(run.workload_id, []).append(run)
    keys: dict[str, list[str]] = {}
    for workload_id, key in key_rows:
        keys.setdefault(workload_id, []).append(key)
    views = []
    for row in rows:
        workload = WorkloadRecord._make(row[:-1])
        views.append(
            WorkloadView(
                workload=workload,
                recent_runs=runs.get(workload.id, []),
                secret_keys=keys.get(workload.id, []),
                running_tasks=int(row[-1] or 0),
                url=public_url(domain, workload),
            )
        )
    return views
