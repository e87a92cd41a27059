"""The Workloads API router, mounted twice: company-scoped (`/v1/compute`) and per-user
(`/v1/users/{user_id}/compute`). Only the dependency choosing the acting user differs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import Field

from berth.api.deps import DomainDep, domain_of
from berth.api.gate import require_approval
from berth.api.middleware.strict_json import StrictJsonRoute
from berth.api.paging import PAGE_QUERY, PageQuery
from berth.api.presenters import log_event, run_out, secret_key_out, workload_out
from berth.api.query_model import QueryModel
from berth.api.read_cache import ReadCache
from berth.api.responses import GATE_ERRORS, workload_errors
from berth.api.routing import PrefixedRouter
from berth.domain import pausing, runs, secrets, workloads
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.records import Run
from berth.domain.runs import RunOutput
from berth.domain.views import WorkloadFilter
from berth.domain.workloads import NAME_PREFIX, WORKLOAD_STATUSES
from berth.schemas.workloads import (
    Deleted,
    LogsOut,
    PendingApproval,
    RunList,
    RunOut,
    ScaleRequest,
    SecretKeyOut,
    SecretList,
    SecretSet,
    SecretValue,
    WorkloadCreate,
    WorkloadList,
    WorkloadOut,
    WorkloadType,
)

FollowQuery = Annotated[
    bool, Query(description="Stream the output as plain text lines until the task ends.")
]


class WorkloadListQuery(PageQuery):
    type: WorkloadType | None = Field(None, description="Only workloads of this type.")
    status: str | None = Field(
        None,
        max_length=32,
        description="Only workloads in this status (" + ", ".join(sorted(WORKLOAD_STATUSES)) + ").",
    )
    name_prefix: str | None = Field(
        None,
        pattern=NAME_PREFIX.pattern,
        description="Only workloads whose name starts with this (a-z, 0-9, '-').",
    )


WORKLOAD_LIST_QUERY = QueryModel(WorkloadListQuery)


def build_workloads_router(
    prefix: str, actor_dependency: Callable[..., Coroutine[Any, Any, Actor]]
) -> APIRouter:
    router = PrefixedRouter(
        prefix=prefix,
        tags=["workloads"],
        responses=workload_errors(401, 403, 404),
        route_class=StrictJsonRoute,
    )
    ActorDep = Depends(actor_dependency)
    reads = ReadCache()

    # The two reads agents poll take the domain from the request, not as a dependency:
    # FastAPI resolves each dependency anew on every request, at a cost near the read's own.

    @router.get(
        "",
        response_model=WorkloadList,
        summary="List the user's workloads, newest first, a page at a time",
        responses=workload_errors(422),
        openapi_extra=WORKLOAD_LIST_QUERY.openapi,
    )
    async def list_workloads(request: Request, actor: Actor = ActorDep) -> Response:
        domain = domain_of(request)
        query = WORKLOAD_LIST_QUERY.parse(request)
        keep = WorkloadFilter(type=query.type, status=query.status, name_prefix=query.name_prefix)

        async def build() -> WorkloadList:
            page = await workloads.list_workloads(
                domain, actor, limit=query.limit, cursor=query.cursor, keep=keep
            )
            return WorkloadList(
                workloads=[workload_out(view) for view in page.items],
                next_cursor=page.next_cursor,
            )

        return await reads.respond(domain, ("list", actor.user_id, query), build)

    @router.post(
        "",
        status_code=201,
        response_model=WorkloadOut,
        summary="Create a workload (gated: may answer 202 pending_approval)",
        responses={
            202: {"model": PendingApproval, "description": "Waiting for a human"},
            **workload_errors(400, 402, 409, 422, *GATE_ERRORS),
        },
    )
    async def create_workload(
        body: WorkloadCreate, request: Request, domain: DomainDep, actor: Actor = ActorDep
    ) -> WorkloadOut:
        await require_approval(
            request,
            domain,
            actor,
            action="create",
            validate=lambda: workloads.validate_create(domain, actor, body),
        )
        return workload_out(await workloads.create_workload(domain, actor, body))

    @router.get("/{workload_id}", response_model=WorkloadOut, summary="Get a workload")
    async def get_workload(workload_id: str, request: Request, actor: Actor = ActorDep) -> Response:
        domain = domain_of(request)

        async def build() -> WorkloadOut:
            return workload_out(await workloads.get_workload(domain, actor, workload_id))

        return await reads.respond(domain, ("get", actor.user_id, workload_id), build)

    @router.delete(
        "/{workload_id}", response_model=Deleted, summary="Delete a workload, stop its runs"
    )
    async def delete_workload(
        workload_id: str, domain: DomainDep, actor: Actor = ActorDep
    ) -> Deleted:
        await workloads.delete_workload(domain, actor, workload_id)
        return Deleted(id=workload_id)

    @router.post(
        "/{workload_id}/start",
        response_model=WorkloadOut,
        summary="Start or wake",
        responses=workload_errors(402, 409),
    )
    async def start_workload(
        workload_id: str, domain: DomainDep, actor: Actor = ActorDep
    ) -> WorkloadOut:
        return workload_out(await workloads.start_workload(domain, actor, workload_id))

    @router.post("/{workload_id}/stop", response_model=WorkloadOut, summary="Scale to zero / pause")
    async def stop_workload(
        workload_id: str, domain: DomainDep, actor: Actor = ActorDep
    ) -> WorkloadOut:
        return workload_out(await workloads.stop_workload(domain, actor, workload_id))

    @router.post(
        "/{workload_id}/pause",
        response_model=WorkloadOut,
        summary="Pause a service (freeze its tasks, memory kept; billed for memory only)",
        responses=workload_errors(409),
    )
    async def pause_workload(
        workload_id: str, domain: DomainDep, actor: Actor = ActorDep
    ) -> WorkloadOut:
        await pausing.pause(domain, actor, workload_id, kind="service")
        return workload_out(await workloads.get_workload(domain, actor, workload_id))

    @router.post(
        "/{workload_id}/resume",
        response_model=WorkloadOut,
        summary="Resume a paused service (its processes carry on)",
        responses=workload_errors(409),
    )
    async def resume_workload(
        workload_id: str, domain: DomainDep, actor: Actor = ActorDep
    ) -> WorkloadOut:
        await pausing.resume(domain, actor, workload_id, kind="service")
        return workload_out(await workloads.get_workload(domain, actor, workload_id))

    @router.post(
        "/{workload_id}/scale",
        response_model=WorkloadOut,
        summary="Set the replica count",
        responses=workload_errors(400, 402, 409, 422),
    )
    async def scale_workload(
        workload_id: str, body: ScaleRequest, domain: DomainDep, actor: Actor = ActorDep
    ) -> WorkloadOut:
        view = await workloads.scale_workload(domain, actor, workload_id, count=body.count)
        return workload_out(view)

    @router.post(
        "/{workload_id}/run",
        status_code=201,
        response_model=RunOut,
        summary="Run now",
        responses=workload_errors(402, 409),
    )
    async def trigger_run(
        workload_id: str,
        domain: DomainDep,
        actor: Actor = ActorDep,
    ) -> RunOut:
        return run_out(await workloads.trigger_run(domain, actor, workload_id))

    @router.get(
        "/{workload_id}/runs",
        response_model=RunList,
        summary="List runs, newest first, a page at a time",
        responses=workload_errors(422),
        openapi_extra=PAGE_QUERY.openapi,
    )
    async def list_runs(
        workload_id: str, request: Request, domain: DomainDep, actor: Actor = ActorDep
    ) -> RunList:
        query = PAGE_QUERY.parse(request)
        page = await runs.list_runs(
            domain, actor, workload_id, limit=query.limit, cursor=query.cursor
        )
        return RunList(runs=[run_out(run) for run in page.items], next_cursor=page.next_cursor)

    @router.get(
        "/{workload_id}/runs/{run_id}/logs",
        response_model=LogsOut,
        summary="A run's output",
        responses={200: {"content": {"text/plain": {}}}, **workload_errors(422)},
    )
    async def run_logs(
        workload_id: str,
        run_id: str,
        domain: DomainDep,
        actor: Actor = ActorDep,
        follow: FollowQuery = False,
    ) -> LogsOut | StreamingResponse:
        run = await runs.find_run(domain, actor, workload_id, run_id)
        return await _logs_response(domain, workload_id, run, follow=follow)

    @router.get(
        "/{workload_id}/logs",
        response_model=LogsOut,
        summary="Output of the live service task, or of the latest run",
        responses={200: {"content": {"text/plain": {}}}, **workload_errors(422)},
    )
    async def latest_logs(
        workload_id: str, domain: DomainDep, actor: Actor = ActorDep, follow: FollowQuery = False
    ) -> LogsOut | StreamingResponse:
        run = await runs.find_run(domain, actor, workload_id, None)
        return await _logs_response(domain, workload_id, run, follow=follow)

    @router.get("/{workload_id}/secrets", response_model=SecretList, summary="List secret keys")
    async def list_secrets(
        workload_id: str, domain: DomainDep, actor: Actor = ActorDep
    ) -> SecretList:
        rows = await secrets.list_secrets(domain, actor, workload_id)
        return SecretList(secrets=[secret_key_out(row) for row in rows])

    @router.post(
        "/{workload_id}/secrets",
        response_model=SecretKeyOut,
        summary="Set an encrypted env var (redeploys a running service)",
        responses=workload_errors(422),
    )
    async def set_secret(
        workload_id: str, body: SecretSet, domain: DomainDep, actor: Actor = ActorDep
    ) -> SecretKeyOut:
        row = await secrets.set_secret(domain, actor, workload_id, key=body.key, value=body.value)
        return secret_key_out(row)

    @router.delete("/{workload_id}/secrets/{key}", response_model=Deleted, summary="Delete")
    async def delete_secret(
        workload_id: str, key: str, domain: DomainDep, actor: Actor = ActorDep
    ) -> Deleted:
        await secrets.delete_secret(domain, actor, workload_id, key)
        return Deleted(id=key)

    @router.get("/{workload_id}/secrets/{key}/reveal", response_model=SecretValue, summary="Reveal")
    async def reveal_secret(
        workload_id: str, key: str, domain: DomainDep, actor: Actor = ActorDep
    ) -> SecretValue:
        value = await secrets.reveal_secret(domain, actor, workload_id, key)
        return SecretValue(key=key, value=value)

    return router


async def _logs_response(
    domain: Domain, workload_id: str, run: Run | None, *, follow: bool
) -> LogsOut | StreamingResponse:
    if follow and run is not None:
        return StreamingResponse(_stream_lines(domain, run), media_type="text/plain")
    output: RunOutput = await runs.read_output(domain, workload_id, run)
    return LogsOut(
        workload_id=workload_id,
        run_id=output.run.id if output.run else None,
        live=output.live,
        events=[log_event(line) for line in output.lines],
    )


async def _stream_lines(domain: Domain, run: Run) -> AsyncIterator[bytes]:
    async for line in runs.follow_output(domain, run):
        yield (line.message + "\n").encode()
