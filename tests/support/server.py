"""The test suite's berth server: `berth.testing.server`'s launcher with the fast controller
intervals the tests need, tenants made in-process, and the server's engine objects.

`BerthServer(..., on_cluster=True)` runs berth with the Kubernetes driver on the cluster of
`BERTH_TEST_KUBECONFIG` (skipping the test without one), its own objects in a namespace of
its own; `remove_containers` then deletes that namespace and its users' namespaces.

Each server has its own data directory and so its own instance id: tasks of different test
servers sharing the engine never see each other.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from berth.config import Settings
from berth.domain import accounts
from berth.server.bootstrap import open_domain
from berth.testing import server as launcher
from tests.support import cluster, postgres

TEST_IMAGE = "berth-test/busybox:latest"

FAST_CONTROLLERS = {
    "BERTH_RECONCILE_INTERVAL_SECONDS": "2",
    "BERTH_METER_INTERVAL_SECONDS": "1",
    "BERTH_STOP_GRACE_SECONDS": "3",
    "BERTH_CRASH_BACKOFF_MAX_SECONDS": "4",
    "BERTH_LOG_LEVEL": "warning",
    # Most suites act as agents (API keys) on workloads; approval gating has its own suite.
    "BERTH_DEFAULT_GATED_ACTIONS": "[]",
    "BERTH_SHELL_CONNECT_SECONDS": "5",
    "BERTH_GATEWAY_WAKE_TIMEOUT_SECONDS": "8",
    # Suites poll the API in tight loops; the rate limit itself is proven in test_limits.py.
    "BERTH_RATE_LIMIT_PER_SECOND": "1000",
    "BERTH_RATE_LIMIT_BURST": "10000",
}


@dataclass
class Tenant:
    user_id: str
    key: str
    client: httpx.Client


class BerthServer(launcher.BerthServer):
    """A berth server with `FAST_CONTROLLERS` under the caller's `env`, on the Docker engine
    or (`on_cluster`) on the test cluster."""

    def __init__(
        self, data_dir: Path, *, env: dict[str, str] | None = None, on_cluster: bool = False
    ) -> None:
        self.namespace: str | None = None
        driver: dict[str, str] = {}
        if on_cluster:
            if not cluster.KUBECONFIG:
                pytest.skip(cluster.NO_CLUSTER)
            self.namespace = cluster.new_namespace()
            driver = cluster.server_env(self.namespace)
        database: dict[str, str] = {}
        if postgres.wanted() and "BERTH_DATABASE_URL" not in (env or {}):
            _name, url = postgres.new_database("berth_server")
            database = {"BERTH_DATABASE_URL": url}
        super().__init__(data_dir, env={**FAST_CONTROLLERS, **database, **driver, **(env or {})})

    def stored_rows(self) -> bytes:
        """What the server's database holds, as bytes to search for a secret: the SQLite
        file and its write-ahead log, or on PostgreSQL every row as `pg_dump` writes them."""
        url = self.env.get("BERTH_DATABASE_URL")
        if url is None:
            files = (self.data_dir / name for name in ("berth.db", "berth.db-wal"))
            return b"".join(path.read_bytes() for path in files if path.exists())
        return postgres.run_server().dump(url.rsplit("/", 1)[1])

    def new_tenant(self, *, credits: float | None = None, operator: bool = False) -> Tenant:
        """A new user and key, made in-process on the server's data directory (the same
        domain functions `berth admin` runs; test_accounts.py covers the CLI itself)."""
        email = f"user-{time.monotonic_ns()}@example.com"
        user_id, key = asyncio.run(self._create_user_and_key(email, credits, operator))
        client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        return Tenant(user_id=user_id, key=key, client=client)

    async def _create_user_and_key(
        self, email: str, credits: float | None, operator: bool
    ) -> tuple[str, str]:
        domain = await open_domain(self.settings())
        try:
            user, _kit = await accounts.create_user(domain, email=email, credits=credits)
            created = await accounts.create_api_key(
                domain, user_id=None if operator else user.id, operator=operator
            )
            return user.id, created.key
        finally:
            await domain.store.close()

    def settings(self) -> Settings:
        """The server's settings as its environment gives them."""
        saved = dict(os.environ)
        try:
            os.environ.clear()
            os.environ.update(self.env)
            return Settings(data_dir=self.data_dir)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def session_token(self, user_id: str) -> str:
        async def issue() -> str:
            domain = await open_domain(self.settings())
            try:
                return await accounts.issue_session_token(domain, user_id, ttl_seconds=None)
            finally:
                await domain.store.close()

        return asyncio.run(issue())

    def containers(self) -> list[dict[str, Any]]:
        """The engine's containers of this server, as `docker ps -a` reports them."""
        out = subprocess.run(
            [
                "docker",
                "ps",
                "-a",
                "--filter",
                f"label=dev.berth.instance={self.instance_id()}",
                "--format",
                "{{json .}}",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def remove_containers(self) -> None:
        """Remove the server's containers, then its volumes and networks, from the engine
        (on the cluster: its namespaces, with everything in them)."""
        if self.namespace is not None:
            cluster.remove_instance(self.instance_id(), self.namespace)
            return
        ids = [c["ID"] for c in self.containers()]
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], check=False, capture_output=True)
        label = f"label=dev.berth.instance={self.instance_id()}"
        for kind in ("volume", "network"):
            subprocess.run(
                ["docker", kind, "prune", "-f", "--filter", label], check=False, capture_output=True
            )
