"""The files API: read, list, write and delete files inside the running task of a workload
(`/v1/compute/{id}/files?path=...`, and the per-user prefix) or a dev box
(`/compute/containers/{id}/files?path=...`).

A file travels as raw bytes both ways (`application/octet-stream`); a directory's listing is
JSON. Gating follows each API's rules for running commands: on a workload, a write or a
delete is an `exec` (it can change what the task runs, as a command can), so a company that
gates exec gates them too; reads change nothing and are never gated (as logs). On a dev box
nothing is gated, as its terminal and SSH are not: the box is its owner's to use.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response

from berth.api.deps import DomainDep
from berth.api.gate import require_approval
from berth.api.responses import GATE_ERRORS, Responses, container_errors, workload_errors
from berth.api.routing import PrefixedRouter
from berth.domain import files
from berth.domain.auth import Actor
from berth.runtime.files import DirectoryListing, FileEntry
from berth.schemas.errors import ErrorOut
from berth.schemas.files import (
    FileDeletedOut,
    FileEntryOut,
    FileListOut,
    FileWrittenOut,
)
from berth.schemas.workloads import PendingApproval

PathQuery = Annotated[
    str,
    Query(
        description="The absolute path inside the task, e.g. `/etc/hostname` (no `..` "
        "segments, no NUL, at most 4096 characters).",
    ),
]

TaskQuery = Annotated[
    str | None,
    Query(
        max_length=64,
        description="The run id of the task to use (a service with several replicas); "
        "default: the task exec would pick.",
    ),
]

_TOO_LARGE: dict[str, Any] = {
    "model": ErrorOut,
    "description": "Over `BERTH_MAX_FILE_BYTES` (10 MiB by default): the file to read, or "
    "the body to write; code `file_too_large`, `limit_bytes` names the limit.",
}
_READ_OK: dict[str, Any] = {
    "description": "A file: its bytes (`application/octet-stream`). A directory: its "
    "listing (JSON).",
    "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"$ref": "#/components/schemas/FileListOut"}},
    },
}
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file's new content, raw bytes.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def build_files_router(
    prefix: str,
    actor_dependency: Callable[..., Coroutine[Any, Any, Actor]],
    *,
    dev_box: bool,
) -> APIRouter:
    """The files routes under `prefix` (`/v1/compute`, `/v1/users/{user_id}/compute` or
    `/compute/containers`); `dev_box` picks the Containers API's targets and rules."""
    errors = container_errors if dev_box else workload_errors
    router = PrefixedRouter(
        prefix=prefix,
        tags=["containers" if dev_box else "files"],
        responses=errors(400, 401, 403, 404, 409),
    )
    ActorDep = Depends(actor_dependency)
    gated: Responses = (
        {} if dev_box else {202: {"model": PendingApproval, "description": "Waiting for a human"}}
    )
    gate_errors = () if dev_box else GATE_ERRORS
    what = "a dev box" if dev_box else "a workload's running task"
    invalid = 400 if dev_box else 422
    id_name = "container_id" if dev_box else "workload_id"
    route = f"/{{{id_name}}}/files"
    kind = "box" if dev_box else "workload"
    target_path = PathParam(alias=id_name, description=f"The {kind}'s id.")

    @router.get(
        route,
        summary=f"Read a file or list a directory in {what}",
        response_class=Response,
        responses={200: _READ_OK, 413: _TOO_LARGE, **errors(invalid)},
        name=f"read_{kind}_file",
    )
    async def read_file(
        path: PathQuery,
        request: Request,
        domain: DomainDep,
        actor: Actor = ActorDep,
        target_id: str = target_path,
        task: TaskQuery = None,
    ) -> Response:
        found = await files.read_path(
            domain,
            actor,
            target_id,
            path=path,
            dev_box=dev_box,
            run_id=task,
            max_bytes=request.app.state.settings.max_file_bytes,
        )
        if isinstance(found, DirectoryListing):
            listing = FileListOut(
                path=path,
                entries=[entry_out(entry) for entry in found.entries],
                truncated=found.truncated,
            )
            return JSONResponse(listing.model_dump(mode="json"))
        return Response(found.data, media_type="application/octet-stream")

    @router.put(
        route,
        summary=f"Write a file in {what}" + ("" if dev_box else " (gated as exec)"),
        response_model=FileWrittenOut,
        responses={
            201: {"model": FileWrittenOut, "description": "The file was created."},
            413: _TOO_LARGE,
            **gated,
            **errors(invalid, *gate_errors),
        },
        openapi_extra=_BODY,
        name=f"write_{kind}_file",
    )
    async def write_file(
        path: PathQuery,
        request: Request,
        domain: DomainDep,
        actor: Actor = ActorDep,
        target_id: str = target_path,
        task: TaskQuery = None,
    ) -> JSONResponse:
        if not dev_box:
            await require_approval(
                request,
                domain,
                actor,
                action="exec",
                validate=lambda: files.check_write(
                    domain, actor, target_id, path=path, dev_box=dev_box, run_id=task
                ),
            )
        written = await files.write_file(
            domain,
            actor,
            target_id,
            path=path,
            data=await request.body(),
            dev_box=dev_box,
            run_id=task,
            max_bytes=request.app.state.settings.max_file_bytes,
        )
        out = FileWrittenOut(path=path, size=written.size, created=written.created)
        return JSONResponse(out.model_dump(mode="json"), status_code=201 if out.created else 200)

    @router.delete(
        route,
        summary=f"Delete a file or an empty directory in {what}"
        + ("" if dev_box else " (gated as exec)"),
        response_model=FileDeletedOut,
        responses={**gated, **errors(invalid, *gate_errors)},
        name=f"delete_{kind}_file",
    )
    async def delete_file(
        path: PathQuery,
        request: Request,
        domain: DomainDep,
        actor: Actor = ActorDep,
        target_id: str = target_path,
        task: TaskQuery = None,
    ) -> FileDeletedOut:
        if not dev_box:
            await require_approval(
                request,
                domain,
                actor,
                action="exec",
                validate=lambda: files.check_write(
                    domain, actor, target_id, path=path, dev_box=dev_box, run_id=task
                ),
            )
        await files.delete_path(domain, actor, target_id, path=path, dev_box=dev_box, run_id=task)
        return FileDeletedOut(path=path)

    return router


def entry_out(entry: FileEntry) -> FileEntryOut:
    return FileEntryOut(
        name=entry.name,
        type=entry.type,
        size=entry.size,
        mode=f"{entry.mode:04o}",
        modified_at=entry.modified_at,
    )
