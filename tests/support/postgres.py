"""A real PostgreSQL server for a test run (`berth.testing.postgres.PostgresServer`, shared
with the benchmarks), stopped at the end.

The suites run on it when `BERTH_TEST_DATABASE=postgresql` (see `tests/conftest.py`): each
test gets a database of its own, copied from a template migrated once per run (`CREATE
DATABASE ... TEMPLATE`, a file copy inside the server, far cheaper than migrating again),
and each test's `berth serve` (`tests/support/server.py`) a database of its own, which it
migrates at start. One server serves the whole run (`run_server`), started on first use.
"""

from __future__ import annotations

import itertools
import os

from berth.testing.postgres import PostgresServer

__all__ = [
    "ENV_VARIABLE",
    "PostgresServer",
    "new_database",
    "run_server",
    "stop_run_server",
    "wanted",
]

ENV_VARIABLE = "BERTH_TEST_DATABASE"
"""`postgresql` runs the suites on PostgreSQL (the store, domain and fast suites, and test
servers' databases); unset or `sqlite`, on SQLite files."""

_run_server: PostgresServer | None = None
_database_numbers = itertools.count(1)


def wanted() -> bool:
    """Whether this run's database is PostgreSQL."""
    choice = os.environ.get(ENV_VARIABLE, "sqlite").strip().lower()
    if choice not in ("sqlite", "postgresql"):
        raise ValueError(f"{ENV_VARIABLE}: must be sqlite or postgresql, not {choice!r}")
    return choice == "postgresql"


def run_server() -> PostgresServer:
    """This run's PostgreSQL server, started on first use (`stop_run_server` at the end)."""
    global _run_server
    if _run_server is None:
        server = PostgresServer()
        server.start()
        _run_server = server
    return _run_server


def stop_run_server() -> None:
    """Stop this run's server if one was started."""
    global _run_server
    if _run_server is not None:
        server, _run_server = _run_server, None
        server.stop()


def new_database(prefix: str, *, template: str | None = None) -> tuple[str, str]:
    """A new database on this run's server: (its name, its URL)."""
    name = f"{prefix}_{next(_database_numbers)}"
    return name, run_server().create(name, template=template)
