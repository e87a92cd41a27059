"""A throwaway PostgreSQL server: Debian's `postgresql` binaries, a cluster made by `initdb`
in a temporary directory, listening on a free loopback port, removed by `stop`.

The test suites run on it (`tests/support/postgres.py`), and so does `bench.replicas`.
PostgreSQL refuses to run as root; as root the server runs as the `postgres` account the
package creates (`runuser`), otherwise as the caller.
"""

from __future__ import annotations

import getpass
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from berth.testing.server import free_port


def binaries() -> Path | None:
    """The directory of the newest installed PostgreSQL's server programs, if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """One throwaway cluster: `start()`, then `url(name)` of databases made by `create()`."""

    def __init__(self) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (scripts/setup.sh --test installs it)")
        self.bin_dir = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="berth-pg-"))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0
        self.user = "postgres" if self._as_postgres else _login()

    def _run(self, *argv: str) -> bytes:
        """Run one of the server's programs; its standard output."""
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=True, capture_output=True, timeout=120).stdout

    def dump(self, name: str) -> bytes:
        """Every row of database `name`, as `pg_dump --data-only` writes them."""
        return self._run(
            "pg_dump", "--data-only", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name
        )

    def start(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        self.resume()

    def resume(self) -> None:
        """Start the cluster's server (again, after `halt`), on the same port."""
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def pid(self) -> int:
        """The server's main process (its backends are its children)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def halt(self) -> None:
        """Stop the server, ending every connection (`fast`: the run's commits are not
        flushed one by one, so a crash would lose the newest); `resume` starts it again."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        """Stop the server (a test may have stopped it already) and remove the cluster."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str, *, driver: str = "asyncpg") -> str:
        return f"postgresql+{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str) -> str:
        """`url` through the server's unix socket (in the cluster's directory) instead of
        loopback TCP, as berth is pointed at a PostgreSQL on its own machine."""
        return f"postgresql+asyncpg://{self.user}@/{database}?host={self.root}&port={self.port}"

    def create(self, name: str, *, template: str | None = None) -> str:
        """A new database (a copy of `template` when given); returns its URL."""
        argv = ["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user]
        if template is not None:
            argv += ["-T", template]
        self._run(*argv, name)
        return self.url(name)

    def drop(self, name: str) -> None:
        self._run(
            "dropdb", "--force", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name
        )


def _login() -> str:
    return getpass.getuser()
