"""`client.compute.files` and `client.containers.files`: files inside a workload's running
task or a dev box (the files API, `.../{id}/files?path=...`), sync and async.

A file's content is bytes both ways; a directory's listing is a `FileListOut`. `read` of a
directory and `list` of a file raise `BerthError` saying which it is. On a workload, `write`
and `delete` may be gated like exec: they then raise `ApprovalPending`; repeat the same call
with `approval_id=` (the same bytes) once a human approved it to get its result.
"""

from __future__ import annotations

import httpx

from berth.schemas.files import FileDeletedOut, FileListOut, FileWrittenOut
from berth.sdk._transport import AsyncTransport, Call, SyncTransport, is_json
from berth.sdk.errors import BerthError
from berth.sdk.routes import segment

FILE_READ_TIMEOUT = 120.0
"""Read timeout of a file call: up to 10 MiB through an exec in the task."""


class FilesRoutes:
    """The files routes under a base: `/v1/compute`, `/v1/users/{id}/compute` or
    `/compute/containers`."""

    def __init__(self, base: str) -> None:
        self.base = base

    def _path(self, target_id: str) -> str:
        return f"{self.base}/{segment(target_id)}/files"

    def get(self, target_id: str, path: str, task: str | None = None) -> Call[FileListOut]:
        return Call(
            "GET",
            self._path(target_id),
            FileListOut,
            params=_query(path, task),
            min_read_timeout=FILE_READ_TIMEOUT,
        )

    def write(
        self,
        target_id: str,
        path: str,
        data: bytes,
        approval_id: str | None,
        task: str | None = None,
    ) -> Call[FileWrittenOut]:
        return Call(
            "PUT",
            self._path(target_id),
            FileWrittenOut,
            params=_query(path, task),
            content=bytes(data),
            min_read_timeout=FILE_READ_TIMEOUT,
            approval_id=approval_id,
        )

    def delete(
        self, target_id: str, path: str, approval_id: str | None, task: str | None = None
    ) -> Call[FileDeletedOut]:
        return Call(
            "DELETE",
            self._path(target_id),
            FileDeletedOut,
            params=_query(path, task),
            approval_id=approval_id,
        )


def _query(path: str, task: str | None) -> dict[str, str]:
    return {"path": path} if task is None else {"path": path, "task": task}


def _file_bytes(response: httpx.Response, path: str) -> bytes:
    if is_json(response):
        raise BerthError(f"{path} is a directory; list it instead", status=response.status_code)
    return response.content


def _listing(response: httpx.Response, path: str) -> FileListOut:
    if not is_json(response):
        raise BerthError(f"{path} is a file, not a directory; read it instead")
    return FileListOut.model_validate_json(response.content)


def _either(response: httpx.Response) -> bytes | FileListOut:
    if is_json(response):
        return FileListOut.model_validate_json(response.content)
    return response.content


class FilesAPI:
    """Files of workloads (`client.compute.files`) or dev boxes (`client.containers.files`)."""

    def __init__(self, transport: SyncTransport, base: str) -> None:
        self._t = transport
        self._routes = FilesRoutes(base)

    def read(self, target_id: str, path: str, *, task: str | None = None) -> bytes:
        """The file's bytes (at most the server's `BERTH_MAX_FILE_BYTES`, else 413). `task`
        names a run's task (a service's replica); default: the one exec would pick."""
        return _file_bytes(self._t.call_raw(self._routes.get(target_id, path, task)), path)

    def list(self, target_id: str, path: str, *, task: str | None = None) -> FileListOut:
        return _listing(self._t.call_raw(self._routes.get(target_id, path, task)), path)

    def get(self, target_id: str, path: str, *, task: str | None = None) -> bytes | FileListOut:
        """A file's bytes or a directory's listing, whichever `path` is."""
        return _either(self._t.call_raw(self._routes.get(target_id, path, task)))

    def write(
        self,
        target_id: str,
        path: str,
        data: bytes,
        *,
        approval_id: str | None = None,
        task: str | None = None,
    ) -> FileWrittenOut:
        """Write `data` to the file (created with its missing parent directories)."""
        return self._t.call(self._routes.write(target_id, path, data, approval_id, task))

    def delete(
        self,
        target_id: str,
        path: str,
        *,
        approval_id: str | None = None,
        task: str | None = None,
    ) -> FileDeletedOut:
        """Delete a file, a link or an empty directory."""
        return self._t.call(self._routes.delete(target_id, path, approval_id, task))


class AsyncFilesAPI:
    """`FilesAPI`, async."""

    def __init__(self, transport: AsyncTransport, base: str) -> None:
        self._t = transport
        self._routes = FilesRoutes(base)

    async def read(self, target_id: str, path: str, *, task: str | None = None) -> bytes:
        call = self._routes.get(target_id, path, task)
        return _file_bytes(await self._t.call_raw(call), path)

    async def list(self, target_id: str, path: str, *, task: str | None = None) -> FileListOut:
        call = self._routes.get(target_id, path, task)
        return _listing(await self._t.call_raw(call), path)

    async def get(
        self, target_id: str, path: str, *, task: str | None = None
    ) -> bytes | FileListOut:
        return _either(await self._t.call_raw(self._routes.get(target_id, path, task)))

    async def write(
        self,
        target_id: str,
        path: str,
        data: bytes,
        *,
        approval_id: str | None = None,
        task: str | None = None,
    ) -> FileWrittenOut:
        call = self._routes.write(target_id, path, data, approval_id, task)
        return await self._t.call(call)

    async def delete(
        self,
        target_id: str,
        path: str,
        *,
        approval_id: str | None = None,
        task: str | None = None,
    ) -> FileDeletedOut:
        return await self._t.call(self._routes.delete(target_id, path, approval_id, task))
