"""A real berth server in a subprocess on a free loopback port, and clients for it.

Each server has its own data directory and so its own instance id: tasks of different test
servers sharing the engine never see each other.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from berth.config import Settings
from berth.domain import accounts
from berth.server.bootstrap import open_domain
from tests.conftest import wait_for

BERTH = [sys.executable, "-m", "berth.cli.main"]
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Tenant:
    user_id: str
    key: str
    client: httpx.Client


class BerthServer:
    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.ssh_port = free_port()
        self.gateway_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **FAST_CONTROLLERS,
            "BERTH_SSH_HOST": "127.0.0.1",
            "BERTH_SSH_PORT": str(self.ssh_port),
            "BERTH_GATEWAY_HOST": "127.0.0.1",
            "BERTH_GATEWAY_PORT": str(self.gateway_port),
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*BERTH, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._healthy, timeout=30, what=f"berth on {self.url} (log: {self.log_path})")

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"berth exited: {self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(self.url + "/healthz", timeout=1).text == "ok"
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def instance_id(self) -> str:
        return (self.data_dir / "instance.id").read_text().strip().lower()

    def admin(self, *args: str) -> dict[str, Any]:
        out = subprocess.run(
            [*BERTH, "admin", *args, "--data-dir", str(self.data_dir)],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        result: dict[str, Any] = json.loads(out.stdout)
        return result

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
        ids = [c["ID"] for c in self.containers()]
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], check=False, capture_output=True)
        subprocess.run(
            [
                "docker",
                "volume",
                "prune",
                "-f",
                "--filter",
                f"label=dev.berth.instance={self.instance_id()}",
            ],
            check=False,
            capture_output=True,
        )
        subprocess.run(
            [
                "docker",
                "network",
                "prune",
                "-f",
                "--filter",
                f"label=dev.berth.instance={self.instance_id()}",
            ],
            check=False,
            capture_output=True,
        )
