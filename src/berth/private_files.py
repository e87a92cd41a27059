"""Files that hold secrets (keys, tokens): private from the first byte, never seen half written.

Every writer of key material goes through here, so the rules hold in one place:

- The bytes are written to a temporary file with a unique name in the target's own directory
  (`tempfile.mkstemp`: created with `O_EXCL`, mode 0600 from the start, so no other user can
  open it even for an instant), flushed to disk (`fsync`), and only then given the real name.
- `replace_private_file` gives it the name with `rename`: a reader sees the old content or
  the new, whole, never a mix; the last writer wins.
- `create_private_file` gives it the name with `link`, which fails when the name exists, so
  an existing file is never replaced: of several processes creating the same key at once
  exactly one succeeds and the others read the winner's key. `read_or_create_private_file`
  wraps this as "the key at this path, made on first use".
- The directory is fsynced after the rename or link, so a crash right after cannot bring the
  old state back.

The temporary file is removed on every path out (the link leaves the real name in place).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def replace_private_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` (mode 0600) atomically, replacing any file there.

    Creates missing parent directories with mode 0700.
    """
    temporary = _write_temporary(path, data)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def create_private_file(path: Path, data: bytes) -> bool:
    """Create `path` (mode 0600) holding `data` unless a file is there already.

    Returns True when this call created it, False when the name was taken (the existing file
    is left alone). Concurrent callers in any number of processes: exactly one gets True, and
    from that instant every reader of `path` sees its complete content. Creates missing
    parent directories with mode 0700.
    """
    temporary = _write_temporary(path, data)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)
    _sync_directory(path.parent)
    return True


def read_or_create_private_file(path: Path, make: Callable[[], bytes]) -> bytes:
    """The content of `path`; if there is no such file, `make()` is stored there first.

    When several processes do this at once, one `make()` result is stored and all of them
    return it (a loser reads the winner's file back, which is whole by construction).
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    create_private_file(path, make())
    return path.read_bytes()


def _write_temporary(path: Path, data: bytes) -> Path:
    """A complete, fsynced, 0600 file holding `data`, beside `path` under a unique name."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _sync_directory(directory: Path) -> None:
    """Make a rename or link in `directory` durable (best effort where it is not possible)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
