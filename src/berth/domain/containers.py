"""The Containers API's dev boxes: workloads of kind `container` in the same core.

A container is a long-running task (one replica) with persistent volumes at its mount paths,
the SSH keys selected for it, SSH access that can be toggled, and ingress rules. It shares the
reconciler, runtime, metering, events and logs with services; only these use-cases and the
wire shapes are its own. Quotas (containers per user) are checked inside the creating
transaction, which holds the store's write lock, so concurrent creates cannot exceed them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from berth.domain import labels, warm_pools
from berth.domain.accounts import check_compute_actor, ensure_compute_actor, load_compute_user
from berth.domain.auth import Actor
from berth.domain.billing import require_credits
from berth.domain.capacity import engine_capacity, refuse_beyond_engine
from berth.domain.context import Domain
from berth.domain.errors import Invalid, NotFound, QuotaExceeded
from berth.domain.events import Event
from berth.domain.ids import new_workload_id
from berth.domain.locks import locked
from berth.domain.mounts import validate_mount_paths
from berth.domain.paging import Keyset, Page, Position, make_page, page_request
from berth.domain.pool_shelf import PooledTask, PoolWant
from berth.domain.statuses import derive_statuses, publish_statuses
from berth.domain.workloads import publish_changed
from berth.runtime.base import Capacity, RuntimeDriverError
from berth.schemas.containers import ContainerCreate
from berth.store.models import (
    ACTIVE_RUN_STATUSES,
    ContainerSshKey,
    IngressRule,
    Run,
    SshKey,
    User,
    Workload,
)
from berth.store.reads import Reader, Row

KEEP_ALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]
"""A dev box's task just stays up; people work in it through SSH and the terminal."""

STATUS_BY_WORKLOAD_STATUS = {
    "pending": "pending",
    "deploying": "initializing",
    "running": "running",
    "paused": "paused",
    "stopping": "stopping",
    "stopped": "stopped",
    "crash_loop": "failed",
    "failed": "failed",
    "deleting": "deleted",
}


class ContainerRecord(NamedTuple):
    """The columns of a dev box its API readers see (in the order of `_CONTAINER_ROWS`)."""

    id: str
    user_id: str
    name: str
    status: str
    status_reason: str | None
    memory_mb: int
    storage_gb: int | None
    instance_type: str | None
    created_at: datetime
    ssh_enabled: bool


@dataclass(frozen=True)
class ContainerView:
    workload: Workload | ContainerRecord
    status: str
    memory_used_mb: int | None
    storage_used_gb: float | None
    https_enabled: bool
    hostname: str
    ssh_command: str


def container_status(workload: Workload | ContainerRecord) -> str:
    return STATUS_BY_WORKLOAD_STATUS.get(workload.status, workload.status)


def hostname_of(domain: Domain, workload_id: str) -> str:
    return f"{workload_id}.{domain.containers.public_domain}"


def ssh_command_of(domain: Domain, workload_id: str) -> str:
    """Works verbatim with OpenSSH: the gateway routes by user name, not by host name."""
    port = domain.containers.ssh_port
    port_flag = "" if port == 22 else f" -p {port}"
    return f"ssh{port_flag} {workload_id}@{domain.containers.public_domain}"


async def create_container(domain: Domain, actor: Actor, body: ContainerCreate) -> ContainerView:
    """Create a dev box; one of a warm pool's shape takes a ready task once its checks
    passed, and runs on it at once (`berth.domain.warm_pools`)."""
    catalogue = domain.containers.instance_types
    if body.instance_type not in catalogue:
        raise Invalid(
            f"unknown instance type {body.instance_type!r}; choose one of " + ", ".join(catalogue),
            field="instance_type",
        )
    if not body.ssh_key_ids:
        raise Invalid("at least one SSH key is required", field="ssh_key_ids")
    mount_paths = validate_mount_paths(body.mount_paths)
    _arch, cpu = catalogue[body.instance_type]
    capacity = await engine_capacity(domain)
    now = domain.clock.now()
    image = body.image or domain.containers.image
    want = PoolWant("container", image, cpu, body.memory_mb, None, tuple(mount_paths))
    pooled: PooledTask | None = None
    try:
        async with domain.store.transaction() as session:
            user = await _check_create(session, actor, body, cpu, capacity)
            pooled = warm_pools.take(domain, want)
            workload = await _insert_container(session, user.id, body, want, now, pooled)
            user.live_workloads += 1
            user.live_containers += 1
    except BaseException:
        if pooled is not None:
            await warm_pools.discard(domain, pooled)
        raise
    if pooled is not None:
        warm_pools.hand_over(domain, workload, pooled)
    publish_statuses(domain, [workload])
    publish_changed(domain, workload)
    return await _view(domain, workload)


async def _check_create(
    session: AsyncSession,
    actor: Actor,
    body: ContainerCreate,
    cpu: float,
    capacity: Capacity | None,
) -> User:
    """Every check of a dev box's create (quota, limits, the engine's size, keys, credits);
    the acting user."""
    user, kit = await load_compute_user(session, actor.user_id, lock=True)
    if user.live_containers >= kit.max_containers:
        raise QuotaExceeded(f"container limit reached ({kit.max_containers})")
    if cpu > kit.max_cpu:
        raise QuotaExceeded(
            f"instance_type: {body.instance_type} has {cpu:g} vCPUs; your limit is {kit.max_cpu:g}",
            field="instance_type",
        )
    if body.memory_mb > kit.max_memory_mb:
        raise QuotaExceeded(f"memory_mb: at most {kit.max_memory_mb} MB", field="memory_mb")
    refuse_beyond_engine(
        capacity, cpu=cpu, memory_mb=body.memory_mb, instance_type=body.instance_type
    )
    await _owned_keys(session, actor.user_id, body.ssh_key_ids)
    require_credits(user)
    return user


async def _insert_container(
    session: AsyncSession,
    user_id: str,
    body: ContainerCreate,
    task: PoolWant,
    now: datetime,
    pooled: PooledTask | None,
) -> Workload:
    """The dev box's rows (its task as `task` describes it): its workload, its keys, and
    (taking a pool task) its first run."""
    workload = Workload(
        id=pooled.workload_id if pooled is not None else new_workload_id(),
        user_id=user_id,
        name=body.name,
        type="container",
        image=task.image,
        command=list(KEEP_ALIVE),
        env={},
        cpu=task.cpu,
        memory_mb=body.memory_mb,
        replicas=1,
        desired_state="running",
        status="pending" if pooled is None else "running",
        instance_type=body.instance_type,
        storage_gb=body.storage_gb,
        ssh_enabled=body.ssh_enabled,
        mount_paths=list(task.mount_paths),
        generation=1,
        created_at=now,
        updated_at=now,
    )
    session.add(workload)
    await session.flush()
    for key_id in dict.fromkeys(body.ssh_key_ids):
        session.add(ContainerSshKey(workload_id=workload.id, key_id=key_id))
    if pooled is not None:
        session.add(warm_pools.running_first_run(workload, pooled, now=now))
    return workload


async def _owned_keys(session: AsyncSession, user_id: str, key_ids: list[int]) -> None:
    for key_id in key_ids:
        key = await session.get(SshKey, key_id)
        if key is None or key.user_id != user_id:
            raise NotFound(f"ssh key {key_id} not found", field="ssh_key_ids")


async def owned_container(
    session: AsyncSession, actor: Actor, container_id: str, *, lock: bool = False
) -> Workload:
    """The actor's live dev box (`NotFound` otherwise); with `lock`, as `owned_workload`."""
    workload = await (
        locked(session, Workload, container_id) if lock else session.get(Workload, container_id)
    )
    if (
        workload is None
        or workload.type != "container"
        or workload.user_id != actor.user_id
        or workload.deleted_at is not None
    ):
        raise NotFound("container not found")
    return workload


async def is_container(domain: Domain, workload_id: str) -> bool:
    """Whether `workload_id` names a dev box (a deleted one too: news of its deletion still
    concerns a container)."""
    async with domain.store.reading() as session:
        workload = await session.get(Workload, workload_id)
    return workload is not None and workload.type == "container"


_HTTPS_RULE = (
    select(IngressRule.id)
    .where(IngressRule.workload_id == Workload.id, IngressRule.port == 443)
    .correlate(Workload)
    .exists()
)
_RUNNING_TASK = (
    select(Run.task_id)
    .where(Run.workload_id == Workload.id, Run.status == "running")
    .correlate(Workload)
    .limit(1)
    .scalar_subquery()
)
_CONTAINER_ROWS = select(
    *(getattr(Workload, name) for name in ContainerRecord._fields), _HTTPS_RULE, _RUNNING_TASK
).where(
    Workload.user_id == bindparam("user_id"),
    Workload.type == "container",
    Workload.deleted_at.is_(None),
)
_ONE_CONTAINER = _CONTAINER_ROWS.where(Workload.id == bindparam("container_id"))
_CONTAINER_KEYSET = Keyset(Workload.created_at, Workload.id, newest_first=False)
_FIRST_CONTAINERS, _LATER_CONTAINERS = _CONTAINER_KEYSET.pages(_CONTAINER_ROWS)
CONTAINER_LIST = "containers"
"""The name a container list's cursors carry."""


async def list_containers(
    domain: Domain, actor: Actor, *, limit: int | None = None, cursor: str | None = None
) -> Page[ContainerView]:
    """One page of the user's dev boxes, oldest first (creation time, then id), in two
    queries, with their last measured usage."""
    request = page_request(CONTAINER_LIST, limit, cursor)

    def read(reader: Reader) -> list[tuple[ContainerRecord, bool, str | None]]:
        check_compute_actor(reader, actor)
        params: dict[str, object] = {"user_id": actor.user_id}
        later = _CONTAINER_KEYSET.params(request, params)
        rows = reader.all(_LATER_CONTAINERS if later else _FIRST_CONTAINERS, params)
        return [(ContainerRecord._make(row[:-2]), bool(row[-2]), row[-1]) for row in rows]

    found = await domain.store.read(read)
    page = make_page(CONTAINER_LIST, found, request.limit, _position)
    # One after the other, not gathered: a view's usage is almost always the last measured
    # one, which takes no turn of the loop, while each gathered task would wait for one
    # behind every other ready request.
    views = [await _live_view(domain, *row) for row in page.items]
    return Page(items=views, next_cursor=page.next_cursor)


def _position(row: tuple[ContainerRecord, bool, str | None]) -> Position:
    return Position(created_at=row[0].created_at, id=row[0].id)


async def get_container(domain: Domain, actor: Actor, container_id: str) -> ContainerView:
    """One dev box in two queries, with its last measured usage (see `domain.usage`)."""

    def read(reader: Reader) -> tuple[ContainerRecord, bool, str | None]:
        check_compute_actor(reader, actor)
        params = {"user_id": actor.user_id, "container_id": container_id}
        row = reader.first(_ONE_CONTAINER, params)
        if row is None:
            raise NotFound("container not found")
        return ContainerRecord._make(row[:-2]), bool(row[-2]), row[-1]

    return await _live_view(domain, *await domain.store.read(read))


async def _live_view(
    domain: Domain, container: ContainerRecord, https: bool, running_task: str | None
) -> ContainerView:
    memory_mb: int | None = None
    storage_gb: float | None = None
    # Usage is measured while the container runs (null otherwise, as the docs say).
    if domain.runtime is not None and running_task is not None:
        try:
            used = await domain.usage.memory_bytes(domain.runtime, running_task)
            memory_mb = None if used is None else round(used / 2**20)
            selector = dict(labels.workload_selector(domain.instance_id, container.id))
            storage_gb = round(
                await domain.usage.storage_bytes(domain.runtime, selector) / 2**30, 3
            )
        except RuntimeDriverError:
            pass  # usage is best effort; the container's state does not depend on it
    return ContainerView(
        workload=container,
        status=container_status(container),
        memory_used_mb=memory_mb,
        storage_used_gb=storage_gb,
        https_enabled=https,
        hostname=hostname_of(domain, container.id),
        ssh_command=ssh_command_of(domain, container.id),
    )


async def delete_container(domain: Domain, actor: Actor, container_id: str) -> None:
    """Gone from the API at once; the reconciler removes its task, then its volumes."""
    async with domain.store.transaction() as session:
        user, _kit = await load_compute_user(session, actor.user_id, lock=True)
        workload = await owned_container(session, actor, container_id, lock=True)
        now = domain.clock.now()
        user.live_workloads -= 1
        user.live_containers -= 1
        workload.deleted_at, workload.desired_state = now, "stopped"
        workload.status, workload.updated_at = "deleting", now
        await session.execute(
            delete(ContainerSshKey).where(ContainerSshKey.workload_id == workload.id)
        )
        await session.execute(delete(IngressRule).where(IngressRule.workload_id == workload.id))
        for run in await session.scalars(
            select(Run).where(Run.workload_id == workload.id, Run.status.in_(ACTIVE_RUN_STATUSES))
        ):
            run.stop_requested, run.stop_reason = True, "deleted"
    publish_statuses(domain, [workload])
    publish_changed(domain, workload)


async def start_container(domain: Domain, actor: Actor, container_id: str) -> ContainerView:
    async with domain.store.transaction() as session:
        user, _kit = await load_compute_user(session, actor.user_id, lock=True)
        workload = await owned_container(session, actor, container_id, lock=True)
        require_credits(user)
        if workload.desired_state != "running" or workload.status in ("stopped", "failed"):
            workload.status, workload.status_reason = "pending", None
        workload.desired_state = "running"
        workload.backoff_until, workload.consecutive_failures = None, 0
        workload.updated_at = domain.clock.now()
    publish_statuses(domain, [workload])
    publish_changed(domain, workload)
    return await _view(domain, workload)


async def stop_container(domain: Domain, actor: Actor, container_id: str) -> ContainerView:
    """The task is removed; the volumes stay for the next start. The answer says
    `stopping` while the task is still there (`stopped` if there is none)."""
    async with domain.store.transaction() as session:
        await load_compute_user(session, actor.user_id, lock=True)
        workload = await owned_container(session, actor, container_id, lock=True)
        workload.desired_state = "stopped"
        workload.updated_at = domain.clock.now()
        changed = await derive_statuses(session, [workload], workload.updated_at)
    publish_changed(domain, workload)
    publish_statuses(domain, changed)
    return await _view(domain, workload)


async def set_ssh_enabled(domain: Domain, actor: Actor, container_id: str, enabled: bool) -> bool:
    async with domain.store.transaction() as session:
        await ensure_compute_actor(session, actor)
        workload = await owned_container(session, actor, container_id, lock=True)
        workload.ssh_enabled = enabled
        workload.updated_at = domain.clock.now()
    domain.bus.publish(
        Event(
            "container.ssh",
            user_id=workload.user_id,
            workload_id=workload.id,
            data={"ssh_enabled": enabled},
        )
    )
    return enabled


_CONTAINER_SETTINGS = select(Workload.ssh_enabled, Workload.mount_paths).where(
    Workload.id == bindparam("container_id"),
    Workload.user_id == bindparam("user_id"),
    Workload.type == "container",
    Workload.deleted_at.is_(None),
)


def check_owned_container(reader: Reader, actor: Actor, container_id: str) -> Row:
    """`owned_container` inside `Store.read` (with the compute check before it): the dev
    box's SSH switch and mount paths; `NotFound` if it is not the actor's live dev box."""
    check_compute_actor(reader, actor)
    params = {"user_id": actor.user_id, "container_id": container_id}
    row = reader.first(_CONTAINER_SETTINGS, params)
    if row is None:
        raise NotFound("container not found")
    return row


async def _settings(domain: Domain, actor: Actor, container_id: str) -> tuple[bool, list[str]]:
    """The dev box's SSH switch and mount paths, on the read path (`Store.read`)."""

    def read(reader: Reader) -> tuple[bool, list[str]]:
        row = check_owned_container(reader, actor, container_id)
        return bool(row[0]), [str(path) for path in row[1]]

    return await domain.store.read(read, snapshot=False)


async def get_ssh_enabled(domain: Domain, actor: Actor, container_id: str) -> bool:
    return (await _settings(domain, actor, container_id))[0]


async def get_mount_paths(domain: Domain, actor: Actor, container_id: str) -> list[str]:
    return (await _settings(domain, actor, container_id))[1]


async def set_mount_paths(
    domain: Domain, actor: Actor, container_id: str, paths: list[str]
) -> tuple[list[str], bool]:
    """Store the new paths; a running container is restarted onto them (True)."""
    normalised = validate_mount_paths(paths)
    async with domain.store.transaction() as session:
        await ensure_compute_actor(session, actor)
        workload = await owned_container(session, actor, container_id, lock=True)
        changed = normalised != list(workload.mount_paths)
        restart = changed and workload.desired_state == "running"
        workload.mount_paths = normalised
        if restart:
            workload.generation += 1
            workload.status, workload.status_reason = "pending", "restarting onto new mounts"
        workload.updated_at = domain.clock.now()
    if restart:
        publish_statuses(domain, [workload])
        publish_changed(domain, workload)
    return normalised, restart


async def _view(domain: Domain, workload: Workload) -> ContainerView:
    """The view a write answers with: its usage is not measured (`memory_used_mb` and
    `storage_used_gb` are null); a read shows it."""
    async with domain.store.reading() as session:
        https = await session.scalar(
            select(IngressRule.id).where(
                IngressRule.workload_id == workload.id, IngressRule.port == 443
            )
        )
    return ContainerView(
        workload=workload,
        status=container_status(workload),
        memory_used_mb=None,
        storage_used_gb=None,
        https_enabled=https is not None,
        hostname=hostname_of(domain, workload.id),
        ssh_command=ssh_command_of(domain, workload.id),
    )


@dataclass(frozen=True)
class Unserved:
    """Why a dev box's ingress rules reach nothing now: a code to match on, words to read."""

    code: str
    message: str


async def why_unserved(domain: Domain, workload_id: str) -> Unserved | None:
    """For the HTTP gateway, when a request through an ingress rule finds no running task:
    why (a stopped dev box says who stopped it and how to start it; requests never start
    it). None when `workload_id` is no live dev box."""
    async with domain.store.reading() as session:
        workload = await session.get(Workload, workload_id)
    if workload is None or workload.type != "container" or workload.deleted_at is not None:
        return None
    status = container_status(workload)
    if workload.desired_state != "running":
        how = (
            workload.status_reason
            if status == "stopped" and workload.status_reason
            else f"POST /compute/containers/{workload.id}/start starts it"
        )
        return Unserved("dev_box_stopped", f"dev box {workload.id} is {status}: {how}")
    why = f" ({workload.status_reason})" if workload.status_reason else ""
    return Unserved(
        "dev_box_not_running",
        f"dev box {workload.id} is {status}{why}; its ingress rules answer once it runs",
    )
