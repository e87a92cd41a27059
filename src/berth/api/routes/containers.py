"""The Containers API router (`/compute/...`): dev boxes, SSH keys, SSH access, ingress rules
and mount paths, with the shapes of the Containers API document."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request, Response

from berth.api.deps import DomainDep, company_actor, domain_of
from berth.api.middleware.strict_json import StrictJsonRoute
from berth.api.paging import PAGE_QUERY
from berth.api.presenters import container_out, rule_out, ssh_key_out
from berth.api.read_cache import ReadCache, json_response
from berth.api.responses import container_errors
from berth.api.routing import PrefixedRouter
from berth.domain import containers, ingress, pausing, ssh_keys
from berth.domain.auth import Actor
from berth.domain.ingress import RuleListeners
from berth.schemas.containers import (
    MAX_KEY_ID,
    ContainerCreate,
    ContainerList,
    ContainerOut,
    IngressRuleCreate,
    IngressRuleList,
    IngressRuleOut,
    MountPaths,
    MountPathsUpdated,
    SshAccess,
    SshKeyCreate,
    SshKeyList,
    SshKeyOut,
    StatusOk,
)

router = PrefixedRouter(
    prefix="/compute",
    tags=["containers"],
    responses=container_errors(401, 403, 404),
    route_class=StrictJsonRoute,
)
ActorDep = Annotated[Actor, Depends(company_actor)]
reads = ReadCache()
"""Dev box answers carry live usage, so they are kept per usage epoch as well (see
`LiveUsage.epoch`): a kept answer is at most one memory time to live older than the figures."""


async def rule_listeners(request: Request) -> RuleListeners | None:
    """The server's HTTP gateway, which must listen for a rule's port before it is added.
    (A coroutine: FastAPI runs a plain-function dependency on its thread pool, and under load
    that hand-off cost each rule change hundreds of milliseconds.)"""
    listeners: RuleListeners | None = getattr(request.app.state, "rule_listeners", None)
    return listeners


RuleListenersDep = Annotated[RuleListeners | None, Depends(rule_listeners)]


@router.get(
    "/containers",
    response_model=ContainerList,
    summary="List containers, oldest first (pages with ?limit=&cursor=)",
    responses=container_errors(400),
    openapi_extra=PAGE_QUERY.openapi,
)
async def list_containers(request: Request, actor: ActorDep) -> Response:
    domain = domain_of(request)
    query = PAGE_QUERY.parse(request)
    limit, cursor = query.limit, query.cursor

    async def build() -> ContainerList:
        page = await containers.list_containers(domain, actor, limit=limit, cursor=cursor)
        return ContainerList(
            containers=[container_out(view) for view in page.items], next_cursor=page.next_cursor
        )

    key = ("list", actor.user_id, limit, cursor, domain.usage.epoch())
    return await reads.respond(domain, key, build, omit_none=_documented_fields(limit, cursor))


@router.post(
    "/containers",
    status_code=201,
    response_model=ContainerOut,
    summary="Create container",
    responses=container_errors(400, 402),
)
async def create_container(
    body: ContainerCreate, domain: DomainDep, actor: ActorDep
) -> ContainerOut:
    return container_out(await containers.create_container(domain, actor, body))


@router.get("/containers/{container_id}", response_model=ContainerOut, summary="Get container")
async def get_container(container_id: str, request: Request, actor: ActorDep) -> Response:
    # The domain from the request, not a dependency: agents poll this read (see deps).
    domain = domain_of(request)

    async def build() -> ContainerOut:
        return container_out(await containers.get_container(domain, actor, container_id))

    key = ("get", actor.user_id, container_id, domain.usage.epoch())
    return await reads.respond(domain, key, build)


@router.delete("/containers/{container_id}", response_model=StatusOk, summary="Delete container")
async def delete_container(container_id: str, domain: DomainDep, actor: ActorDep) -> StatusOk:
    await containers.delete_container(domain, actor, container_id)
    return StatusOk()


@router.post(
    "/containers/{container_id}/start",
    response_model=ContainerOut,
    summary="Start container",
    responses=container_errors(402),
)
async def start_container(container_id: str, domain: DomainDep, actor: ActorDep) -> ContainerOut:
    return container_out(await containers.start_container(domain, actor, container_id))


@router.post(
    "/containers/{container_id}/stop", response_model=ContainerOut, summary="Stop container"
)
async def stop_container(container_id: str, domain: DomainDep, actor: ActorDep) -> ContainerOut:
    return container_out(await containers.stop_container(domain, actor, container_id))


@router.post(
    "/containers/{container_id}/pause",
    response_model=ContainerOut,
    summary="Pause container (freeze its processes, memory and files kept)",
    responses=container_errors(409),
)
async def pause_container(container_id: str, domain: DomainDep, actor: ActorDep) -> ContainerOut:
    await pausing.pause(domain, actor, container_id, kind="container")
    return container_out(await containers.get_container(domain, actor, container_id))


@router.post(
    "/containers/{container_id}/resume",
    response_model=ContainerOut,
    summary="Resume a paused container (its processes carry on)",
    responses=container_errors(409),
)
async def resume_container(container_id: str, domain: DomainDep, actor: ActorDep) -> ContainerOut:
    await pausing.resume(domain, actor, container_id, kind="container")
    return container_out(await containers.get_container(domain, actor, container_id))


@router.get(
    "/ssh-keys",
    response_model=SshKeyList,
    summary="List SSH keys, oldest first (pages with ?limit=&cursor=)",
    responses=container_errors(400),
    openapi_extra=PAGE_QUERY.openapi,
)
async def list_ssh_keys(request: Request, domain: DomainDep, actor: ActorDep) -> Response:
    query = PAGE_QUERY.parse(request)
    limit, cursor = query.limit, query.cursor
    page = await ssh_keys.list_keys(domain, actor, limit=limit, cursor=cursor)
    listed = SshKeyList(ssh_keys=[ssh_key_out(k) for k in page.items], next_cursor=page.next_cursor)
    return json_response(listed, omit_none=_documented_fields(limit, cursor))


def _documented_fields(limit: int | None, cursor: str | None) -> frozenset[str]:
    """A caller that sends no paging parameters gets the documented shape exactly: its
    list, without `next_cursor` (it cannot have one: a first page holds every box and key
    the quotas allow)."""
    return frozenset({"next_cursor"}) if limit is None and cursor is None else frozenset()


@router.post(
    "/ssh-keys",
    status_code=201,
    response_model=SshKeyOut,
    summary="Add SSH key",
    responses=container_errors(400, 409),
)
async def add_ssh_key(body: SshKeyCreate, domain: DomainDep, actor: ActorDep) -> SshKeyOut:
    key = await ssh_keys.add_key(domain, actor, name=body.name, public_key=body.public_key)
    return ssh_key_out(key)


@router.delete(
    "/ssh-keys/{key_id}",
    response_model=StatusOk,
    summary="Delete SSH key",
    responses=container_errors(400),
)
async def delete_ssh_key(
    key_id: Annotated[int, Path(ge=1, le=MAX_KEY_ID)], domain: DomainDep, actor: ActorDep
) -> StatusOk:
    await ssh_keys.delete_key(domain, actor, key_id)
    return StatusOk()


@router.get("/containers/{container_id}/ssh", response_model=SshAccess, summary="SSH status")
async def get_ssh(container_id: str, domain: DomainDep, actor: ActorDep) -> SshAccess:
    return SshAccess(ssh_enabled=await containers.get_ssh_enabled(domain, actor, container_id))


@router.put(
    "/containers/{container_id}/ssh",
    response_model=SshAccess,
    summary="Toggle SSH",
    responses=container_errors(400),
)
async def set_ssh(
    container_id: str, body: SshAccess, domain: DomainDep, actor: ActorDep
) -> SshAccess:
    enabled = await containers.set_ssh_enabled(domain, actor, container_id, body.ssh_enabled)
    return SshAccess(ssh_enabled=enabled)


@router.get(
    "/containers/{container_id}/ingress", response_model=IngressRuleList, summary="List rules"
)
async def list_ingress(container_id: str, domain: DomainDep, actor: ActorDep) -> IngressRuleList:
    rules = await ingress.list_rules(domain, actor, container_id)
    return IngressRuleList(rules=[rule_out(rule) for rule in rules])


@router.post(
    "/containers/{container_id}/ingress",
    status_code=201,
    response_model=IngressRuleOut,
    summary="Add (or update) an ingress rule",
    responses=container_errors(400, 409),
)
async def add_ingress(
    container_id: str,
    body: IngressRuleCreate,
    domain: DomainDep,
    actor: ActorDep,
    listeners: RuleListenersDep,
) -> IngressRuleOut:
    rule = await ingress.add_rule(
        domain,
        actor,
        container_id,
        port=body.port,
        target_port=body.target_port,
        listeners=listeners,
    )
    return rule_out(rule)


@router.delete(
    "/containers/{container_id}/ingress/{port}",
    response_model=StatusOk,
    summary="Remove rule",
    responses=container_errors(400),
)
async def remove_ingress(
    container_id: str,
    port: Annotated[int, Path(ge=1, le=65535)],
    domain: DomainDep,
    actor: ActorDep,
) -> StatusOk:
    await ingress.remove_rule(domain, actor, container_id, port)
    return StatusOk()


@router.get(
    "/containers/{container_id}/mounts", response_model=MountPaths, summary="Get mount paths"
)
async def get_mounts(container_id: str, domain: DomainDep, actor: ActorDep) -> MountPaths:
    return MountPaths(mount_paths=await containers.get_mount_paths(domain, actor, container_id))


@router.put(
    "/containers/{container_id}/mounts",
    response_model=MountPathsUpdated,
    summary="Update mount paths (restarts a running container)",
    responses=container_errors(400),
)
async def set_mounts(
    container_id: str, body: MountPaths, domain: DomainDep, actor: ActorDep
) -> MountPathsUpdated:
    paths, restarted = await containers.set_mount_paths(
        domain, actor, container_id, list(body.mount_paths)
    )
    return MountPathsUpdated(mount_paths=paths, restarted=restarted)
