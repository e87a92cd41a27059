"""A real PostgreSQL server for a test run (`berth.testing.postgres.PostgresServer`, shared
with the benchmarks), stopped at the end.

The suites run on it when `BERTH_TEST_DATABASE=postgresql` (see `tests/conftest.py`): each
test gets a database of its own, copied from a template migrated once per run (`CREATE
DATABASE ... TEMPLATE`, a file copy inside the server, far cheaper than migrating again).
"""

from __future__ import annotations

import os

from berth.testing.postgres import PostgresServer

__all__ = ["ENV_VARIABLE", "PostgresServer", "wanted"]

ENV_VARIABLE = "BERTH_TEST_DATABASE"
"""`postgresql` runs the store, domain and fast suites on PostgreSQL; unset or `sqlite`, on
SQLite files."""


def wanted() -> bool:
    """Whether this run's database is PostgreSQL."""
    choice = os.environ.get(ENV_VARIABLE, "sqlite").strip().lower()
    if choice not in ("sqlite", "postgresql"):
        raise ValueError(f"{ENV_VARIABLE}: must be sqlite or postgresql, not {choice!r}")
    return choice == "postgresql"
