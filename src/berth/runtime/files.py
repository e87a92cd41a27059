"""Files inside a running task, for every driver: built on the contract's one-off exec.

Each operation is one `Runtime.exec` of a short POSIX shell script that uses only what
busybox has (`sh`, `[`, `stat -c`, `cat`, `mkdir -p`, `rm`, `rmdir`). A file's bytes travel
on the exec's standard input (a write) or standard output (a read), which every driver
carries unchanged (the output capture of `berth.runtime.output_capture` keeps bytes, not
text), so any driver that runs a command gets files, binary-safe, with no engine-specific
code. The scripts say what went wrong with their exit code (`_STATUS`); the errors below
carry that meaning up, and the domain turns them into answers.

What an image needs: `/bin/sh`, `cat` and `stat` supporting `-c` (busybox, coreutils).
Without them the operation raises `FileToolsMissing`.

A directory listing is `stat -c '%f %s %Y'` (raw mode in hex, size, modification time) on
every entry in one call, then the entries' names each ended by a NUL byte, so any name
(newlines, non-UTF-8 bytes) is read back exactly.
"""

from __future__ import annotations

import stat as stat_module
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from berth.runtime.base import (
    CommandNotFound,
    ExecResult,
    ExecSpec,
    Runtime,
    RuntimeDriverError,
    RuntimeUnavailable,
    TaskId,
    TaskNotFound,
)

FILE_TIMEOUT_SECONDS = 60.0
"""A file operation is killed after this long (10 MiB through an exec takes well under 1 s)."""

EntryType = Literal["file", "dir", "link", "other"]


class FileOperationError(RuntimeDriverError):
    """A file operation in a task failed; `path` is the path it was given."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class PathMissing(FileOperationError):
    """Nothing exists at the path (or a directory on the way to it is missing)."""


class NotRegularFile(FileOperationError):
    """The path names something that cannot be read or written as a file: a directory for
    a write, a device, pipe or socket for a read."""


class PathDenied(FileOperationError):
    """The task's user may not read or write there."""


class DirectoryNotEmpty(FileOperationError):
    """Deleting a directory that still holds entries (files are never removed recursively)."""


class FileTooLarge(FileOperationError):
    """A file to read is larger than the limit; `size` is its size."""

    def __init__(self, message: str, *, path: str, size: int) -> None:
        super().__init__(message, path=path)
        self.size = size


class FileToolsMissing(FileOperationError):
    """The task's image lacks what file operations run with (`/bin/sh`, `cat`, `stat`)."""


class FileOperationFailed(FileOperationError):
    """Anything else (a full disk, a read error); the message holds the command's error."""


@dataclass(frozen=True)
class FileEntry:
    name: str
    """The entry's name in its directory (bytes that are not UTF-8 read as U+FFFD)."""
    type: EntryType
    size: int
    mode: int
    """Permission bits (`0o755`), without the type bits."""
    modified_at: datetime


@dataclass(frozen=True)
class DirectoryListing:
    entries: list[FileEntry]
    truncated: bool
    """True when the directory held more than the limit of entries (the rest is left out)."""


@dataclass(frozen=True)
class FileContent:
    data: bytes


@dataclass(frozen=True)
class WrittenFile:
    size: int
    created: bool
    """True when no file was there before the write."""


_STATUS_MISSING = 60
_STATUS_IS_DIRECTORY = 61
_STATUS_NOT_REGULAR = 62
_STATUS_TOO_LARGE = 63
_STATUS_DENIED = 64
_STATUS_NOT_A_DIRECTORY = 65
_STATUS_NOT_EMPTY = 66
_STATUS_CHANGED = 67
_STATUS_WRITE_FAILED = 68
_STATUS_NOT_FOUND = 127

# Arguments: $1 the path, $2 the largest file to read, $3 the most entries to list.
# A directory: "dir <count> <more>\n", <count> stat lines, then <count> NUL-ended names.
# A file: "file\n" then its bytes.
_READ_SCRIPT = r"""
command -v stat >/dev/null && command -v cat >/dev/null || exit 127
p=$1; limit=$2; max=$3
if [ -d "$p" ]; then
  cd -- "$p" 2>/dev/null || exit 64
  n=0; more=0
  set --
  for f in * .[!.]* ..?*; do
    if [ -e "$f" ] || [ -L "$f" ]; then
      if [ "$n" -ge "$max" ]; then more=1; break; fi
      n=$((n + 1)); set -- "$@" "$f"
    fi
  done
  printf 'dir %s %s\n' "$n" "$more"
  [ "$n" -eq 0 ] && exit 0
  stat -c '%f %s %Y' -- "$@" || exit 67
  printf '%s\0' "$@"
  exit 0
fi
[ -e "$p" ] || exit 60
[ -f "$p" ] || exit 62
[ -r "$p" ] || exit 64
size=$(stat -L -c %s -- "$p") || exit 127
if [ "$size" -gt "$limit" ]; then printf '%s' "$size"; exit 63; fi
printf 'file\n'
exec cat -- "$p"
"""

# Arguments: $1 the path. Standard input: the file's new content. Prints
# "<created 0|1> <size>".
_WRITE_SCRIPT = r"""
command -v stat >/dev/null && command -v cat >/dev/null || exit 127
p=$1
[ -d "$p" ] && exit 61
d=${p%/*}; [ -n "$d" ] || d=/
if [ ! -d "$d" ]; then
  mkdir -p -- "$d" 2>/dev/null || exit 65
fi
created=1; { [ -e "$p" ] || [ -L "$p" ]; } && created=0
{ true > "$p"; } 2>/dev/null || exit 64
cat > "$p" || exit 68
size=$(stat -L -c %s -- "$p") || exit 127
printf '%s %s' "$created" "$size"
"""

# Arguments: $1 the path. A directory is removed only when empty.
_DELETE_SCRIPT = r"""
p=$1
if [ -d "$p" ] && [ ! -L "$p" ]; then
  rmdir -- "$p" 2>/dev/null && exit 0
  for f in "$p"/* "$p"/.[!.]* "$p"/..?*; do
    if [ -e "$f" ] || [ -L "$f" ]; then exit 66; fi
  done
  exit 64
fi
{ [ -e "$p" ] || [ -L "$p" ]; } || exit 60
rm -f -- "$p" 2>/dev/null || exit 64
[ -e "$p" ] || [ -L "$p" ] && exit 64
exit 0
"""

_ENTRY_TYPES: dict[int, EntryType] = {
    stat_module.S_IFREG: "file",
    stat_module.S_IFDIR: "dir",
    stat_module.S_IFLNK: "link",
}


async def read_path(
    runtime: Runtime, task_id: TaskId, path: str, *, max_bytes: int, max_entries: int
) -> FileContent | DirectoryListing:
    """A file's bytes, or a directory's entries (sorted by name, at most `max_entries`).

    Raises `FileTooLarge` for a file over `max_bytes`, `PathMissing`, `NotRegularFile` (a
    device, pipe or socket), `PathDenied`, `FileToolsMissing`, `FileOperationFailed`; and,
    from the runtime, `TaskNotFound` when the task no longer runs. A directory that changed
    while it was listed is listed once more.
    """
    for _ in range(2):
        result = await _read_run(
            runtime,
            task_id,
            _READ_SCRIPT,
            [path, str(max_bytes), str(max_entries)],
            path=path,
            stdin=None,
            # The header, then the file; a file that grew past the limit since its size was
            # read is cut here and refused below.
            max_output=max_bytes + 64 + max_entries * 320,
        )
        if result.exit_code == _STATUS_CHANGED:
            continue
        _raise_for(result, path)
        header, _, body = result.stdout.partition(b"\n")
        if header == b"file":
            if result.stdout_truncated or len(body) > max_bytes:
                raise FileTooLarge(
                    f"{path} is larger than {max_bytes} bytes", path=path, size=len(body)
                )
            return FileContent(data=body)
        return _listing(header, body, path)
    raise FileOperationFailed(f"{path} kept changing while it was listed; retry", path=path)


async def write_file(runtime: Runtime, task_id: TaskId, path: str, data: bytes) -> WrittenFile:
    """Write `data` to the file at `path`, creating it and any missing parent directories
    (an existing file is overwritten in place: it keeps its mode and owner). Raises
    `NotRegularFile` when `path` is a directory, `PathDenied`, `FileToolsMissing`,
    `FileOperationFailed` (e.g. a full disk, or fewer bytes on disk than were sent)."""
    result = await _run(runtime, task_id, _WRITE_SCRIPT, [path], path=path, stdin=data)
    _raise_for(result, path)
    created, _, size = result.stdout.decode("ascii", "replace").partition(" ")
    if not size.strip().isdigit() or int(size) != len(data):
        raise FileOperationFailed(
            f"writing {path} stored {size.strip() or 'nothing'} of {len(data)} bytes",
            path=path,
        )
    return WrittenFile(size=int(size), created=created == "1")


async def delete_path(runtime: Runtime, task_id: TaskId, path: str) -> None:
    """Delete the file or link at `path`, or the directory if it is empty. Raises
    `PathMissing`, `DirectoryNotEmpty`, `PathDenied`, `FileToolsMissing`."""
    result = await _run(runtime, task_id, _DELETE_SCRIPT, [path], path=path, stdin=None)
    _raise_for(result, path)


READ_ATTEMPTS = 3
"""A read's exec is repeated when its stream broke before the command's status came (a
connection to a cluster's API server cut on the way, say). A read changes nothing, so
repeating it is safe; writes and deletes are not repeated."""


async def _read_run(
    runtime: Runtime,
    task_id: TaskId,
    script: str,
    args: list[str],
    *,
    path: str,
    stdin: bytes | None,
    max_output: int,
) -> ExecResult:
    for attempt in range(READ_ATTEMPTS):
        try:
            return await _run(
                runtime, task_id, script, args, path=path, stdin=stdin, max_output=max_output
            )
        except (TaskNotFound, CommandNotFound, RuntimeUnavailable, FileOperationError):
            raise
        except RuntimeDriverError:
            if attempt + 1 == READ_ATTEMPTS:
                raise
    raise AssertionError("READ_ATTEMPTS is at least 1")


async def _run(
    runtime: Runtime,
    task_id: TaskId,
    script: str,
    args: list[str],
    *,
    path: str,
    stdin: bytes | None,
    max_output: int = 64 * 1024,
) -> ExecResult:
    spec = ExecSpec(
        argv=["/bin/sh", "-c", script, "berth-files", *args],
        stdin=stdin,
        timeout_seconds=FILE_TIMEOUT_SECONDS,
        max_output_bytes=max_output,
    )
    try:
        result = await runtime.exec(task_id, spec)
    except CommandNotFound as exc:
        raise FileToolsMissing(_TOOLS_MISSING, path=path) from exc
    if result.timed_out:
        raise FileOperationFailed(
            f"the file operation on {path} took over {FILE_TIMEOUT_SECONDS:.0f} s", path=path
        )
    return result


_TOOLS_MISSING = (
    "the task's image has no /bin/sh, cat or stat, which the files API runs with "
    "(busybox or coreutils provide them)"
)


def _raise_for(result: ExecResult, path: str) -> None:
    code = result.exit_code
    if code == 0:
        return
    said = result.stderr.decode("utf-8", "replace").strip()
    if code == _STATUS_MISSING:
        raise PathMissing(f"no such file or directory: {path}", path=path)
    if code == _STATUS_IS_DIRECTORY:
        raise NotRegularFile(f"{path} is a directory; name a file inside it", path=path)
    if code == _STATUS_NOT_REGULAR:
        raise NotRegularFile(
            f"{path} is not a regular file or a directory (a device, pipe or socket)", path=path
        )
    if code == _STATUS_TOO_LARGE:
        size = int(result.stdout) if result.stdout.strip().isdigit() else -1
        raise FileTooLarge(f"{path} is {size} bytes", path=path, size=size)
    if code == _STATUS_DENIED:
        raise PathDenied(f"permission denied: {path} (for the task's user)", path=path)
    if code == _STATUS_NOT_A_DIRECTORY:
        raise NotRegularFile(
            f"the directory of {path} cannot be made (a part of it is a file, or is not writable)",
            path=path,
        )
    if code == _STATUS_NOT_EMPTY:
        raise DirectoryNotEmpty(f"{path} is a directory that is not empty", path=path)
    if code == _STATUS_NOT_FOUND:
        raise FileToolsMissing(_TOOLS_MISSING + (f": {said}" if said else ""), path=path)
    detail = f": {said}" if said else ""
    raise FileOperationFailed(
        f"the file operation on {path} failed (exit {code}){detail}", path=path
    )


def _listing(header: bytes, body: bytes, path: str) -> DirectoryListing:
    parts = header.split()
    if len(parts) != 3 or parts[0] != b"dir" or not parts[1].isdigit():
        raise FileOperationFailed(f"listing {path} gave an unexpected answer", path=path)
    count, more = int(parts[1]), parts[2] == b"1"
    stats: list[bytes] = []
    rest = body
    for _ in range(count):
        line, _, rest = rest.partition(b"\n")
        stats.append(line)
    names = rest.split(b"\0")  # each name ends with a NUL: `count` names, then b""
    if len(names) != count + 1 or names.pop():
        raise FileOperationFailed(f"listing {path} gave an unexpected answer", path=path)
    entries = [_entry(name, line, path) for name, line in zip(names, stats, strict=True)]
    entries.sort(key=lambda entry: entry.name)
    return DirectoryListing(entries=entries, truncated=more)


def _entry(name: bytes, line: bytes, path: str) -> FileEntry:
    fields = line.split()
    try:
        raw_mode, size, mtime = int(fields[0], 16), int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        raise FileOperationFailed(f"listing {path} gave an unexpected answer", path=path) from None
    return FileEntry(
        name=name.decode("utf-8", "replace"),
        type=_ENTRY_TYPES.get(stat_module.S_IFMT(raw_mode), "other"),
        size=size,
        mode=stat_module.S_IMODE(raw_mode),
        modified_at=datetime.fromtimestamp(mtime, UTC),
    )
