"""Several berth replicas on one PostgreSQL database and one engine: what the replica tests
share. `start_pair` starts replicas `a` and `b` (two real `berth serve` processes with their
own data directories, sharing the keys directory), `a` first so it holds every lease."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import select

from berth.domain import labels, leases
from berth.domain.ledger import ledger_sum
from berth.domain.replicas import PRESENCE_PREFIX
from berth.server.bootstrap import open_domain
from berth.store.models import User
from berth.testing.waiting import wait_for
from tests.support.postgres import PostgresServer
from tests.support.server import BerthServer, Tenant

LEASE_SECONDS = 5.0
CONTROLLERS = {
    "reconciler",
    "scheduler",
    "meter",
    "idle-scaler",
    "retention",
    "sessions",
    "warm-pools",
}
_databases = itertools.count()


@contextmanager
def start_pair(directory: Path, postgres: PostgresServer) -> Iterator[list[BerthServer]]:
    """Replicas `a` and `b` on a new database of `postgres`; `a` holds every lease."""
    name = f"replicas_{next(_databases)}"
    env = {
        "BERTH_DATABASE_URL": postgres.create(name),
        "BERTH_SHARED_DIR": str(directory / "shared"),
        "BERTH_LEASE_SECONDS": str(LEASE_SECONDS),
        "BERTH_LOG_LEVEL": "info",
    }
    a, b = (BerthServer(directory / n, env=env) for n in ("a", "b"))
    try:
        a.start()
        wait_for(lambda: lease_holders(a) == dict.fromkeys(CONTROLLERS, a), what="a's leases")
        b.start()
        yield [a, b]
    finally:
        for server in (a, b):
            server.stop()
        a.remove_containers()
        postgres.drop(name)


def lease_holders(server: BerthServer) -> dict[str, BerthServer | str]:
    """Each unexpired controller lease's holder: `server` when it is that process, else its
    id (replicas' presence leases are left out)."""

    async def read() -> dict[str, tuple[str, datetime]]:
        domain = await open_domain(server.settings())
        try:
            return await leases.holders(domain)
        finally:
            await domain.store.close()

    now = datetime.now(UTC)
    pid = f":{server.process.pid}:" if server.process else "none"
    return {
        name: server if pid in holder else holder
        for name, (holder, expires) in asyncio.run(read()).items()
        if expires > now and not name.startswith(PRESENCE_PREFIX)
    }


def balance_and_ledger(server: BerthServer, user_id: str) -> tuple[int, int]:
    """The user's balance and the sum of their ledger, in micro-credits (always equal)."""

    async def read() -> tuple[int, int]:
        domain = await open_domain(server.settings())
        try:
            async with domain.store.reading() as session:
                balance = await session.scalar(select(User.credits_micro).where(User.id == user_id))
                return int(balance or 0), await ledger_sum(session, user_id)
        finally:
            await domain.store.close()

    return asyncio.run(read())


def client_of(server: BerthServer, tenant: Tenant) -> httpx.Client:
    """The tenant's client, on `server`."""
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {tenant.key}"}, timeout=30
    )


def tasks_created(workload_id: str, since: float) -> int:
    """How many tasks the engine created for the workload since `since` (a Unix time),
    removed ones included (its event log)."""
    out = subprocess.run(
        ["docker", "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
         "--filter", "type=container", "--filter", "event=create",
         "--filter", f"label={labels.WORKLOAD}={workload_id}", "--format", "{{.ID}}"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return len(out.stdout.split())


def finished(state: dict[str, object]) -> bool:
    """A workload's state (`GET /v1/compute/{id}`) whose latest run succeeded."""
    runs = state.get("recent_runs")
    return isinstance(runs, list) and bool(runs) and runs[0]["status"] == "succeeded"
