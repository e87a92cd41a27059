"""File tools: read, list, write and delete files inside a workload's running task (by
default the one exec picks; `task` names one replica's) or a dev box, through the files API
(`.../files?path=...&task=...`).

MCP carries text, so a file's bytes are text when they are UTF-8 and base64 otherwise;
`encoding` says which, both ways (a write takes `utf-8` text or `base64`). On a workload a
write or delete is gated as exec: it then returns `pending_approval` instead of running.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from berth.mcp.calls import ClientSource, Ctx, through_api
from berth.mcp.models import PendingApproval
from berth.mcp.tools_workloads import READ, change
from berth.schemas.files import FileDeletedOut, FileListOut, FileWrittenOut
from berth.schemas.limits import MAX_RUN_ID_CHARS
from berth.sdk import ApprovalPending, AsyncClient
from berth.sdk.files import AsyncFilesAPI

Encoding = Literal["utf-8", "base64"]

FilePath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        description="Absolute path inside the task or dev box, e.g. `/app/config.yaml` "
        "(no `..` segments).",
    ),
]
WorkloadTarget = Annotated[
    str | None,
    Field(description="The workload whose running task holds the file (from workloads_list)."),
]
DevBoxTarget = Annotated[
    str | None, Field(description="The dev box that holds the file (from devboxes_list).")
]
TaskChoice = Annotated[
    str | None,
    Field(
        max_length=MAX_RUN_ID_CHARS,
        description="With `workload_id`: which task (one replica of a service) to use, as "
        "the id of a running run from workloads_runs (`slot` says which replica). It must "
        "be running and not being stopped or replaced (else HTTP 409); an id not of this "
        "workload is HTTP 404. Default: the running task of the lowest slot, as "
        "workloads_exec uses (one still starting is waited for up to 30 s). Not with "
        "`dev_box_id`.",
    ),
]


class FileContentOut(BaseModel):
    path: str
    size: int = Field(description="The file's size in bytes.")
    encoding: Encoding = Field(
        description="`utf-8`: `content` is the file's text; `base64`: the file is not UTF-8 "
        "text (binary), `content` is its bytes in base64."
    )
    content: str


class FileWriteOutcome(BaseModel):
    """`written` when the write ran; `pending_approval` when a human must approve it."""

    written: FileWrittenOut | None = None
    pending_approval: PendingApproval | None = None


class FileDeleteOutcome(BaseModel):
    """`deleted` when the delete ran; `pending_approval` when a human must approve it."""

    deleted: FileDeletedOut | None = None
    pending_approval: PendingApproval | None = None


def _target(workload_id: str | None, dev_box_id: str | None, task: str | None) -> tuple[str, bool]:
    """(id, is a dev box); exactly one must be given, and `task` only with a workload (a dev
    box has a single task)."""
    if (workload_id is None) == (dev_box_id is None):
        raise ToolError("give exactly one of `workload_id` and `dev_box_id`")
    if dev_box_id is not None:
        if task is not None:
            raise ToolError("`task` picks a workload's replica; a dev box has one, omit `task`")
        return dev_box_id, True
    assert workload_id is not None
    return workload_id, False


def _files(client: AsyncClient, dev_box: bool) -> AsyncFilesAPI:
    return client.containers.files if dev_box else client.compute.files


def content_out(path: str, data: bytes, encoding: Encoding | None) -> FileContentOut:
    """The file as text when it is UTF-8 (unless base64 was asked for), else base64."""
    if encoding != "base64":
        try:
            return FileContentOut(
                path=path, size=len(data), encoding="utf-8", content=data.decode("utf-8")
            )
        except UnicodeDecodeError:
            pass
    text = base64.b64encode(data).decode("ascii")
    return FileContentOut(path=path, size=len(data), encoding="base64", content=text)


def content_bytes(content: str, encoding: Encoding) -> bytes:
    if encoding == "utf-8":
        return content.encode("utf-8")
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ToolError(f"`content` is not valid base64: {exc}") from exc


def register(server: FastMCP, source: ClientSource) -> None:
    @server.tool(annotations=READ)
    async def files_read(
        path: FilePath,
        ctx: Ctx,
        workload_id: WorkloadTarget = None,
        dev_box_id: DevBoxTarget = None,
        task: TaskChoice = None,
        encoding: Annotated[
            Encoding | None,
            Field(description="Force `base64`; default: UTF-8 text when the file is text."),
        ] = None,
    ) -> FileContentOut:
        """Read a file inside a workload's running task or a dev box (give one of
        `workload_id`, `dev_box_id`). Returns its text, or base64 for a binary file
        (`encoding` says which). At most 10 MiB (the server's limit); use files_list for a
        directory."""
        target, dev_box = _target(workload_id, dev_box_id, task)
        data = await through_api(
            source, ctx, lambda c: _files(c, dev_box).read(target, path, task=task)
        )
        return content_out(path, data, encoding)

    @server.tool(annotations=READ)
    async def files_list(
        path: FilePath,
        ctx: Ctx,
        workload_id: WorkloadTarget = None,
        dev_box_id: DevBoxTarget = None,
        task: TaskChoice = None,
    ) -> FileListOut:
        """List a directory inside a workload's running task or a dev box: each entry's
        name, type (file, dir, link, other), size, mode and modification time."""
        target, dev_box = _target(workload_id, dev_box_id, task)
        return await through_api(
            source, ctx, lambda c: _files(c, dev_box).list(target, path, task=task)
        )

    @server.tool(annotations=change(destructive=True, idempotent=True))
    async def files_write(
        path: FilePath,
        content: Annotated[str, Field(description="The file's new content.")],
        ctx: Ctx,
        workload_id: WorkloadTarget = None,
        dev_box_id: DevBoxTarget = None,
        task: TaskChoice = None,
        encoding: Annotated[
            Encoding,
            Field(description="`utf-8`: `content` is text; `base64`: binary content."),
        ] = "utf-8",
    ) -> FileWriteOutcome:
        """Write a file inside a workload's running task or a dev box, replacing what is
        there (missing parent directories are created). On a workload it may be gated like
        exec: then it returns `pending_approval` (call approval_wait, do not repeat)."""
        target, dev_box = _target(workload_id, dev_box_id, task)
        data = content_bytes(content, encoding)

        async def write(client: AsyncClient) -> FileWriteOutcome:
            try:
                written = await _files(client, dev_box).write(target, path, data, task=task)
            except ApprovalPending as pending:
                return FileWriteOutcome(
                    pending_approval=PendingApproval.for_id(pending.approval_id)
                )
            return FileWriteOutcome(written=written)

        return await through_api(source, ctx, write)

    @server.tool(annotations=change(destructive=True, idempotent=True))
    async def files_delete(
        path: FilePath,
        ctx: Ctx,
        workload_id: WorkloadTarget = None,
        dev_box_id: DevBoxTarget = None,
        task: TaskChoice = None,
    ) -> FileDeleteOutcome:
        """Delete a file, a link or an empty directory inside a workload's running task or a
        dev box (never a directory's contents). On a workload it may be gated like exec:
        then it returns `pending_approval`."""
        target, dev_box = _target(workload_id, dev_box_id, task)

        async def delete(client: AsyncClient) -> FileDeleteOutcome:
            try:
                deleted = await _files(client, dev_box).delete(target, path, task=task)
            except ApprovalPending as pending:
                return FileDeleteOutcome(
                    pending_approval=PendingApproval.for_id(pending.approval_id)
                )
            return FileDeleteOutcome(deleted=deleted)

        return await through_api(source, ctx, delete)
