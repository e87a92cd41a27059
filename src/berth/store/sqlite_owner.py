"""One `berth serve` per SQLite database: the serving process holds a lock beside the file.

An SQLite database is served by one process (docs/operations.md): its events do not cross
processes, its gateways' routes follow only its own changes, and a process starting ends
every shell session it did not serve. A second `berth serve` on the same file, by mistake
or in the belief that replicas work on SQLite, would break those quietly, so it is refused
at start with one line naming the process that serves and the way to several replicas
(PostgreSQL). The lock is the kernel's (`flock` on `<database>.serve-lock`, a file of its
own: SQLite's own locks on the database file are POSIX record locks, which closing any
other descriptor of that file would drop), so a process that dies, even by SIGKILL,
releases it at once. Admin commands take no lock: they write through SQLite's own locking,
beside the server, as before.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import IO

from berth.store.db import sqlite_file

log = logging.getLogger(__name__)


class DatabaseInUse(Exception):
    """Another process serves this SQLite database; the message names it."""


def hold_sqlite_database(url: str) -> IO[bytes] | None:
    """For an SQLite file, take its serving lock and return the open lock file (kept open
    for the process's life: closing it releases the lock); None for another database, an
    in-memory or URI-style one, or where the file system cannot lock (a warning is
    logged). Raises `DatabaseInUse` when another process holds it."""
    path = sqlite_file(url)  # as `Store` reads it
    if path is None:
        return None
    database = Path(path).resolve()
    database.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock = (database.parent / f"{database.name}.serve-lock").open("a+b")
    except OSError as error:
        _serving_unlocked(database, error)
        return None
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().decode(errors="replace").strip() or "unknown"
        lock.close()
        raise DatabaseInUse(
            f"another berth serve (pid {holder}) is serving the SQLite database {database}: "
            "stop it first; several replicas need PostgreSQL (docs/operations.md, "
            '"Several replicas")'
        ) from None
    except OSError as error:  # a file system without flock
        lock.close()
        _serving_unlocked(database, error)
        return None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()).encode())
    lock.flush()
    return lock


def _serving_unlocked(database: Path, error: OSError) -> None:
    log.warning(
        "serving %s without its lock (%s): a second berth serve would not be refused",
        database,
        error,
    )
