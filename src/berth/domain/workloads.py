"""Workload use-cases: create, read, delete, start, stop, scale and run now.

Each call validates, writes desired state in one transaction, publishes `workload.changed` and
returns; the reconciler does the engine work. Every query is scoped to the acting user. A
call that changes desired state derives the status it leads to in the same transaction (a
stopped service with tasks left is `stopping`), so its answer is never older than the
status events that follow it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from berth.domain import warm_pools
from berth.domain.accounts import check_compute_actor, load_compute_user
from berth.domain.auth import Actor
from berth.domain.billing import require_credits
from berth.domain.capacity import engine_capacity, refuse_beyond_engine
from berth.domain.context import Domain
from berth.domain.errors import Conflict, Invalid, NotFound, QuotaExceeded
from berth.domain.events import Event
from berth.domain.ids import new_run_id, new_workload_id
from berth.domain.locks import lock_owner_then, locked
from berth.domain.paging import Page, page_request
from berth.domain.planning import workload_status
from berth.domain.pool_shelf import PooledTask, PoolWant
from berth.domain.schedules import Schedule, parse_schedule
from berth.domain.statuses import derive_statuses, publish_statuses
from berth.domain.views import (
    WORKLOAD_LIST,
    WorkloadFilter,
    WorkloadView,
    read_view,
    read_view_page,
    view_of_created,
)
from berth.runtime.base import Capacity
from berth.schemas.workloads import WorkloadCreate
from berth.store.models import ACTIVE_RUN_STATUSES, AccountKit, Run, User, Workload
from berth.store.reads import Reader


async def validate_create(domain: Domain, actor: Actor, body: WorkloadCreate) -> None:
    """Every check of `create_workload`, without creating: a call that would be refused is
    refused before it is queued for approval."""
    capacity = await engine_capacity(domain)
    async with domain.store.reading() as session:
        await _check_create(session, actor, body, capacity, lock=False)


async def create_workload(domain: Domain, actor: Actor, body: WorkloadCreate) -> WorkloadView:
    """Create a workload; a sandbox service of a warm pool's shape takes a ready task once
    its checks passed (`berth.domain.warm_pools`)."""
    capacity = await engine_capacity(domain)
    now = domain.clock.now()
    pooled: PooledTask | None = None
    runs: list[Run] = []
    try:
        async with domain.store.transaction() as session:
            user, schedule = await _check_create(session, actor, body, capacity, lock=True)
            pooled = warm_pools.take(domain, _pool_want(body))
            workload = Workload(
                id=pooled.workload_id if pooled is not None else new_workload_id(),
                user_id=user.id,
                name=body.name,
                type=body.type,
                image=body.image,
                command=body.command if isinstance(body.command, list) else None,
                command_text=body.command if isinstance(body.command, str) else None,
                env=dict(body.env),
                port=body.port,
                cpu=body.cpu,
                memory_mb=body.memory_mb,
                replicas=body.replicas if body.type == "service" else 1,
                schedule_expr=body.schedule_expr,
                timeout_seconds=body.timeout_seconds,
                scale_to_zero=body.scale_to_zero,
                idle_timeout_seconds=body.idle_timeout_seconds,
                desired_state="running",
                next_run_at=schedule.next_after(now) if schedule else None,
                generation=1,
                created_at=now,
                updated_at=now,
            )
            workload.status, workload.status_reason = _first_status(workload, pooled, now)
            session.add(workload)
            user.live_workloads += 1
            await session.flush()
            if body.type == "job":
                runs.append(_new_run(workload, trigger="create", now=now))
            if pooled is not None:
                runs.append(warm_pools.running_first_run(workload, pooled, now=now))
            session.add_all(runs)
    except BaseException:
        if pooled is not None:
            await warm_pools.discard(domain, pooled)
        raise
    if pooled is not None:
        warm_pools.hand_over(domain, workload, pooled)
    publish_changed(domain, workload)
    return view_of_created(domain, workload, runs)


def _first_status(
    workload: Workload, pooled: PooledTask | None, now: datetime
) -> tuple[str, str | None]:
    """A new workload's status and reason: what the reconciler would derive at once where
    no run decides it (a schedule waits for its time, a service with no replicas is
    stopped), so no status write and event follow the create; else `pending`."""
    if workload.type == "schedule" or (workload.type == "service" and workload.replicas == 0):
        status = workload_status(workload, [], None, now)
        return status.status, status.reason
    if pooled is not None and workload.replicas == 1:
        return "running", None
    return "pending", None


def _pool_want(body: WorkloadCreate) -> PoolWant | None:
    """The pool task a create could take: a service's with no command of its own (a
    sandbox driven through exec, shells and files), no environment, awake from the start."""
    if body.type != "service" or body.command is not None or body.env or body.scale_to_zero:
        return None
    return PoolWant("service", body.image, body.cpu, body.memory_mb, body.port)


WORKLOAD_STATUSES = frozenset(
    {
        "pending",
        "deploying",
        "running",
        "crash_loop",
        "failed",
        "stopping",
        "stopped",
        "succeeded",
        "timed_out",
        "idle",
        "scheduled",
        "paused",
    }
)
"""The statuses a visible workload can have (the `status` filter accepts these)."""
WORKLOAD_TYPES = ("service", "job", "schedule")
NAME_PREFIX = re.compile(r"^[a-z0-9-]{1,63}$")


def validate_filter(keep: WorkloadFilter) -> WorkloadFilter:
    """`Invalid` naming the filter whose value no workload could match by its rule."""
    if keep.type is not None and keep.type not in WORKLOAD_TYPES:
        raise Invalid("type: must be one of service, job, schedule", field="type")
    if keep.status is not None and keep.status not in WORKLOAD_STATUSES:
        known = ", ".join(sorted(WORKLOAD_STATUSES))
        raise Invalid(f"status: must be one of {known}", field="status")
    if keep.name_prefix is not None and not NAME_PREFIX.match(keep.name_prefix):
        raise Invalid("name_prefix: 1 to 63 characters of a-z, 0-9 and '-'", field="name_prefix")
    return keep


async def list_workloads(
    domain: Domain,
    actor: Actor,
    *,
    limit: int | None = None,
    cursor: str | None = None,
    keep: WorkloadFilter | None = None,
) -> Page[WorkloadView]:
    """One page of the user's workloads, newest first (see `berth.domain.paging`)."""
    request = page_request(WORKLOAD_LIST, limit, cursor)
    keep = validate_filter(keep or WorkloadFilter())

    def read(reader: Reader) -> Page[WorkloadView]:
        check_compute_actor(reader, actor)
        return read_view_page(domain, reader, actor.user_id, request, keep)

    return await domain.store.read(read)


async def get_workload(domain: Domain, actor: Actor, workload_id: str) -> WorkloadView:
    def read(reader: Reader) -> WorkloadView:
        check_compute_actor(reader, actor)
        return read_view(domain, reader, actor.user_id, workload_id)

    return await domain.store.read(read)


async def _view_after_write(domain: Domain, actor: Actor, workload_id: str) -> WorkloadView:
    """The view a write answers with: `get_workload` without its compute check, which the
    write's own transaction made under the user's lock a moment before."""
    return await domain.store.read(
        lambda reader: read_view(domain, reader, actor.user_id, workload_id)
    )


async def delete_workload(domain: Domain, actor: Actor, workload_id: str) -> None:
    """Hide the workload at once and stop its in-flight runs; the reconciler removes the rest."""
    async with domain.store.transaction() as session:
        user, _kit = await load_compute_user(session, actor.user_id, lock=True)
        workload = await owned_workload(session, actor, workload_id, lock=True)
        now = domain.clock.now()
        user.live_workloads -= 1
        workload.deleted_at = now
        workload.desired_state = "stopped"
        workload.status = "deleting"
        workload.updated_at = now
        await _request_stop_all(session, workload.id, reason="deleted")
    publish_changed(domain, workload)


async def start_workload(domain: Domain, actor: Actor, workload_id: str) -> WorkloadView:
    """Services: run again (a scaled-to-zero service gets one replica). Schedules: resume."""
    async with domain.store.transaction() as session:
        user, _kit = await load_compute_user(session, actor.user_id, lock=True)
        workload = await owned_workload(session, actor, workload_id, lock=True)
        if workload.type == "job":
            raise Conflict("a job is not started: trigger a run with POST .../run")
        if workload.type == "service":
            require_credits(user)
            if workload.replicas == 0:
                workload.replicas = 1
            workload.backoff_until = None
            workload.consecutive_failures = 0
        elif workload.desired_state != "running" and workload.schedule_expr:
            workload.next_run_at = parse_schedule(workload.schedule_expr).next_after(
                domain.clock.now()
            )
        workload.desired_state = "running"
        workload.updated_at = domain.clock.now()
        changed = await derive_statuses(session, [workload], workload.updated_at)
    publish_changed(domain, workload)
    publish_statuses(domain, changed)
    return await _view_after_write(domain, actor, workload_id)


async def stop_workload(domain: Domain, actor: Actor, workload_id: str) -> WorkloadView:
    """Services scale to zero, schedules pause, and in-flight runs of any type are stopped."""
    async with domain.store.transaction() as session:
        await load_compute_user(session, actor.user_id, lock=True)
        workload = await owned_workload(session, actor, workload_id, lock=True)
        if workload.type != "job":
            workload.desired_state = "stopped"
        workload.updated_at = domain.clock.now()
        await _request_stop_all(session, workload.id, reason="stopped")
        changed = await derive_statuses(session, [workload], workload.updated_at)
    publish_changed(domain, workload)
    publish_statuses(domain, changed)
    return await _view_after_write(domain, actor, workload_id)


async def scale_workload(
    domain: Domain, actor: Actor, workload_id: str, *, count: int
) -> WorkloadView:
    async with domain.store.transaction() as session:
        user, kit = await load_compute_user(session, actor.user_id, lock=True)
        workload = await owned_workload(session, actor, workload_id, lock=True)
        if workload.type != "service":
            raise Conflict(f"only services scale; this workload is a {workload.type}")
        _check_limits(
            kit,
            cpu=workload.cpu,
            memory_mb=workload.memory_mb,
            replicas=count,
            replicas_field="count",
        )
        if count > 0 and (count > workload.replicas or workload.desired_state != "running"):
            require_credits(user)
        if count > 0 and workload.desired_state != "running":
            # Started by a scale, as by POST .../start: a back-off from before (a standby
            # task that could not be created, say) does not hold the new start back.
            workload.backoff_until, workload.consecutive_failures = None, 0
        workload.replicas = count
        if count > 0:
            workload.desired_state = "running"
        workload.updated_at = domain.clock.now()
        changed = await derive_statuses(session, [workload], workload.updated_at)
    publish_changed(domain, workload)
    publish_statuses(domain, changed)
    return await _view_after_write(domain, actor, workload_id)


async def trigger_run(domain: Domain, actor: Actor, workload_id: str) -> Run:
    """Start a job or schedule run now (a manual run is not subject to schedule overlap)."""
    async with domain.store.transaction() as session:
        user, _kit = await load_compute_user(session, actor.user_id, lock=True)
        workload = await owned_workload(session, actor, workload_id)
        if workload.type == "service":
            raise Conflict("a service runs continuously; use start, stop or scale")
        require_credits(user)
        run = _new_run(workload, trigger="manual", now=domain.clock.now())
        session.add(run)
    publish_changed(domain, workload)
    return run


async def _check_create(
    session: AsyncSession,
    actor: Actor,
    body: WorkloadCreate,
    capacity: Capacity | None,
    *,
    lock: bool,
) -> tuple[User, Schedule | None]:
    _check_fields_fit_type(body)
    schedule = parse_schedule(body.schedule_expr) if body.schedule_expr is not None else None
    user, kit = await load_compute_user(session, actor.user_id, lock=lock)
    _check_limits(kit, cpu=body.cpu, memory_mb=body.memory_mb, replicas=body.replicas)
    refuse_beyond_engine(capacity, cpu=body.cpu, memory_mb=body.memory_mb)
    if user.live_workloads >= kit.max_workloads:
        raise QuotaExceeded(f"workload limit reached ({kit.max_workloads})")
    if body.type == "job" or (body.type == "service" and body.replicas > 0):
        require_credits(user)
    await _check_name_free(session, user.id, body.name)
    return user, schedule


async def owned_workload(
    session: AsyncSession, actor: Actor, workload_id: str, *, lock: bool = False
) -> Workload:
    """The actor's live workload of the Compute API (`NotFound` otherwise); with `lock`, its
    row locked until the transaction ends and read afresh under the lock (a change confined
    to the workload: see `berth.domain.locks`)."""
    workload = await (
        locked(session, Workload, workload_id) if lock else session.get(Workload, workload_id)
    )
    if (
        workload is None
        or workload.user_id != actor.user_id
        or workload.deleted_at is not None
        or workload.type == "container"  # the Containers API's own
    ):
        raise NotFound(f"workload {workload_id} not found")
    return workload


def new_scheduled_run(workload: Workload, *, now: datetime) -> Run:
    return _new_run(workload, trigger="schedule", now=now)


def _new_run(workload: Workload, *, trigger: str, now: datetime, slot: int = 0) -> Run:
    return Run(
        id=new_run_id(),
        workload_id=workload.id,
        user_id=workload.user_id,
        trigger=trigger,
        slot=slot,
        generation=workload.generation,
        status="pending",
        cpu=workload.cpu,
        memory_mb=workload.memory_mb,
        created_at=now,
    )


def new_replica_run(workload: Workload, slot: int, *, now: datetime, standby: bool = False) -> Run:
    run = _new_run(workload, trigger="replica", now=now, slot=slot)
    run.standby = standby
    return run


async def _request_stop_all(session: AsyncSession, workload_id: str, *, reason: str) -> None:
    runs = await session.scalars(
        select(Run).where(Run.workload_id == workload_id, Run.status.in_(ACTIVE_RUN_STATUSES))
    )
    for run in runs:
        # A standby run is the planner's to keep or drop (see `planning.plan_service`).
        if not run.stop_requested and not run.standby:
            run.stop_requested = True
            run.stop_reason = reason


async def _check_name_free(session: AsyncSession, user_id: str, name: str) -> None:
    taken = await session.scalar(
        select(Workload.id).where(
            Workload.user_id == user_id, Workload.name == name, Workload.deleted_at.is_(None)
        )
    )
    if taken:
        raise Conflict(f"name: you already have a workload named {name!r}", field="name")


def _check_fields_fit_type(body: WorkloadCreate) -> None:
    given = body.model_fields_set
    if body.type == "schedule" and body.schedule_expr is None:
        raise Invalid("schedule_expr: required for type 'schedule'", field="schedule_expr")
    if body.type != "schedule" and body.schedule_expr is not None:
        raise Invalid("schedule_expr: only schedules take a schedule", field="schedule_expr")
    if body.type != "service" and body.port is not None:
        raise Invalid("port: only services take a port", field="port")
    if body.type != "service" and "replicas" in given:
        raise Invalid("replicas: only services have replicas", field="replicas")
    if body.scale_to_zero and (body.type != "service" or body.port is None):
        raise Invalid(
            "scale_to_zero: only services with a port scale to zero (requests wake them)",
            field="scale_to_zero",
        )
    if body.type == "service" and body.timeout_seconds is not None:
        raise Invalid(
            "timeout_seconds: services run until stopped; only jobs and schedules time out",
            field="timeout_seconds",
        )


def _check_limits(
    kit: AccountKit, *, cpu: float, memory_mb: int, replicas: int, replicas_field: str = "replicas"
) -> None:
    if cpu > kit.max_cpu:
        raise QuotaExceeded(f"cpu: at most {kit.max_cpu:g} vCPUs per task", field="cpu")
    if memory_mb > kit.max_memory_mb:
        raise QuotaExceeded(
            f"memory_mb: at most {kit.max_memory_mb} MB per task", field="memory_mb"
        )
    if replicas > kit.max_replicas:
        raise QuotaExceeded(
            f"{replicas_field}: at most {kit.max_replicas} replicas", field=replicas_field
        )


def publish_changed(domain: Domain, workload: Workload) -> None:
    """Tell the controllers (and watchers) that a workload's desired state changed. The
    event carries the workload's type (`data["type"]`), so a listener that cares for some
    types only (the scheduler, the gateway's routes) passes over the others unread."""
    domain.bus.publish(
        Event(
            "workload.changed",
            user_id=workload.user_id,
            workload_id=workload.id,
            data={"type": workload.type},
        )
    )


@dataclass(frozen=True)
class Wake:
    """What `wake_service` did: whether the service was asleep, and the standby run that
    now takes its first slot (its task only needs starting), if it had one."""

    woken: bool
    standby_run_id: str | None = None


async def wake_service(domain: Domain, workload_id: str) -> Wake:
    """Start a scaled-to-zero service for a request that arrived for it (the gateway's
    call: no caller to authorize, the request names the workload). `woken` is false if it
    already runs or starts. Raises `NotFound` for anything but a live service and
    `PaymentRequired` when its user has no credits."""
    async with domain.store.transaction() as session:
        # Two wakes racing (two gateway requests, two replicas) wake once: the second waits
        # for the workload's row and then sees it running.
        _, workload = await lock_owner_then(session, Workload, workload_id)
        if workload is None or workload.type != "service" or workload.deleted_at is not None:
            raise NotFound(f"workload {workload_id} not found")
        if workload.desired_state == "running" and workload.replicas > 0:
            return Wake(woken=False)
        user = await session.get(User, workload.user_id)
        if user is not None:
            require_credits(user)
        workload.desired_state = "running"
        workload.replicas = max(workload.replicas, 1)
        workload.backoff_until, workload.consecutive_failures = None, 0
        workload.updated_at = domain.clock.now()
        standby_run_id = await _promote_standby(session, workload, now=workload.updated_at)
    publish_changed(domain, workload)
    return Wake(woken=True, standby_run_id=standby_run_id)


async def _promote_standby(
    session: AsyncSession, workload: Workload, *, now: datetime
) -> str | None:
    """Let a waking service's standby run take slot 0 now, in the wake's own transaction
    (the planner would promote it on its next pass; this saves that pass a write)."""
    standby = await session.scalar(
        select(Run).where(
            Run.workload_id == workload.id,
            Run.standby.is_(True),
            Run.stop_requested.is_(False),
            Run.status == "pending",
            Run.generation == workload.generation,
            Run.slot == 0,
        )
    )
    if standby is None:
        return None
    standby.standby, standby.created_at = False, now
    return standby.id


async def scale_idle_service_to_zero(
    domain: Domain, workload_id: str, *, idle_since: datetime
) -> bool:
    """Stop an opted-in service that has had no request since `idle_since` (long enough
    ago: the caller checked its idle timeout). False if it changed meanwhile."""
    async with domain.store.transaction() as session:
        _, workload = await lock_owner_then(session, Workload, workload_id)
        if (
            workload is None
            or not workload.scale_to_zero
            or workload.deleted_at is not None
            or workload.desired_state != "running"
            or workload.updated_at > idle_since
        ):
            return False
        workload.desired_state = "stopped"
        workload.updated_at = domain.clock.now()
        await _request_stop_all(session, workload.id, reason="idle")
    publish_changed(domain, workload)
    return True


async def idle_candidates(domain: Domain) -> list[Workload]:
    """Services that scale to zero and currently want to run."""
    async with domain.store.reading() as session:
        rows = await session.scalars(
            select(Workload).where(
                Workload.type == "service",
                Workload.scale_to_zero.is_(True),
                Workload.deleted_at.is_(None),
                Workload.desired_state == "running",
            )
        )
        return list(rows)
