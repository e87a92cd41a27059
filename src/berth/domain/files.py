"""Files inside the running task of a workload or a dev box: read, list, write and delete.

The task is picked as for exec (`execution.running_target`: the caller's own workload or
dev box, a task that will keep running, one still starting waited for), and the operation
runs through the runtime contract's exec (`berth.runtime.files`), so every driver has it.
No transaction is held while it runs.

Paths are checked before anything else: absolute, no NUL byte, no `..` segment (a path
means what it says, with nothing to resolve), at most `MAX_PATH_CHARS` characters. Sizes
are bounded by the caller's `max_bytes` both ways (a read of a larger file, a write of a
larger body: `TooLarge`, 413).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from berth.domain.auth import Actor
from berth.domain.containers import owned_container
from berth.domain.context import Domain
from berth.domain.errors import Conflict, Forbidden, Invalid, NotFound, NotRunning, TooLarge
from berth.domain.execution import Owner, check_target, running_target
from berth.domain.workloads import owned_workload
from berth.runtime import files as task_files
from berth.runtime.base import Runtime, TaskId, TaskNotFound
from berth.runtime.files import DirectoryListing, FileContent, WrittenFile
from berth.schemas.files import MAX_LIST_ENTRIES, MAX_PATH_CHARS


class DirectoryNotEmpty(Conflict):
    """A delete of a directory that still holds entries (nothing is removed recursively)."""

    code = "directory_not_empty"


def checked_path(path: str) -> str:
    """`path` if the files API takes it; `Invalid` naming the field `path` otherwise."""
    if not path:
        raise Invalid("path: required (an absolute path such as /etc/hostname)", field="path")
    if "\0" in path:
        raise Invalid("path: must not contain a NUL byte", field="path")
    if len(path) > MAX_PATH_CHARS:
        raise Invalid(f"path: at most {MAX_PATH_CHARS} characters", field="path")
    if not path.startswith("/"):
        raise Invalid(f"path: must be absolute (begin with /), not {path[:80]!r}", field="path")
    if ".." in path.split("/"):
        raise Invalid("path: must not contain '..' segments; name the path itself", field="path")
    return path


def _owner(dev_box: bool) -> Owner:
    return owned_container if dev_box else owned_workload


async def check_write(
    domain: Domain,
    actor: Actor,
    target_id: str,
    *,
    path: str,
    dev_box: bool,
    run_id: str | None = None,
) -> None:
    """Refuse now what a write or delete would refuse before it runs (used before a call is
    held for approval): the path, an unknown target, nothing running."""
    checked_path(path)
    await check_target(domain, actor, target_id, run_id, owner=_owner(dev_box))


async def read_path(
    domain: Domain,
    actor: Actor,
    target_id: str,
    *,
    path: str,
    dev_box: bool,
    max_bytes: int,
    run_id: str | None = None,
) -> FileContent | DirectoryListing:
    """The file's bytes, or the directory's entries (at most `MAX_LIST_ENTRIES`), in the
    task of `run_id` if given, else the one exec would pick."""
    checked_path(path)
    task_id = await _task_of(domain, actor, target_id, dev_box, run_id)
    with _translated(path, max_bytes):
        return await task_files.read_path(
            _runtime(domain), task_id, path, max_bytes=max_bytes, max_entries=MAX_LIST_ENTRIES
        )


async def write_file(
    domain: Domain,
    actor: Actor,
    target_id: str,
    *,
    path: str,
    data: bytes,
    dev_box: bool,
    max_bytes: int,
    run_id: str | None = None,
) -> WrittenFile:
    """Write `data` to the file at `path` (created with its missing parent directories)."""
    checked_path(path)
    if path.endswith("/"):
        raise Invalid(f"path: {path} names a directory (it ends with /); name a file", field="path")
    if len(data) > max_bytes:
        raise _too_large(f"the body is {len(data)} bytes", max_bytes)
    task_id = await _task_of(domain, actor, target_id, dev_box, run_id)
    with _translated(path, max_bytes):
        return await task_files.write_file(_runtime(domain), task_id, path, data)


async def delete_path(
    domain: Domain,
    actor: Actor,
    target_id: str,
    *,
    path: str,
    dev_box: bool,
    run_id: str | None = None,
) -> None:
    """Delete the file or link at `path`, or the directory if it is empty."""
    checked_path(path)
    task_id = await _task_of(domain, actor, target_id, dev_box, run_id)
    with _translated(path, 0):
        await task_files.delete_path(_runtime(domain), task_id, path)


async def _task_of(
    domain: Domain, actor: Actor, target_id: str, dev_box: bool, run_id: str | None
) -> TaskId:
    target = await running_target(domain, actor, target_id, run_id, owner=_owner(dev_box))
    assert target.run.task_id is not None
    return TaskId(target.run.task_id)


def _runtime(domain: Domain) -> Runtime:
    assert domain.runtime is not None
    return domain.runtime


def _too_large(what: str, limit: int, *, field: str | None = None) -> TooLarge:
    return TooLarge(
        f"{what}: the files API reads and writes at most {limit} bytes (BERTH_MAX_FILE_BYTES)",
        limit_bytes=limit,
        field=field,
    )


@contextmanager
def _translated(path: str, max_bytes: int) -> Iterator[None]:
    """Turns the runtime's file errors into domain errors naming the field `path`."""
    try:
        yield
    except TaskNotFound as exc:
        raise NotRunning(f"the task stopped before the file operation ran: {exc}") from exc
    except task_files.PathMissing as exc:
        raise NotFound(f"path: {exc}", field="path") from exc
    except task_files.FileTooLarge as exc:
        raise _too_large(f"path: {path} is {exc.size} bytes", max_bytes, field="path") from exc
    except task_files.NotRegularFile as exc:
        raise Invalid(f"path: {exc}", field="path") from exc
    except task_files.PathDenied as exc:
        raise Forbidden(f"path: {exc}", field="path") from exc
    except task_files.DirectoryNotEmpty as exc:
        raise DirectoryNotEmpty(f"path: {exc}", field="path") from exc
    except task_files.FileOperationError as exc:
        raise Conflict(str(exc), field="path") from exc
