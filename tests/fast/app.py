"""A whole berth application in this process, on the in-memory runtime and a manual clock:
its lifespan runs (controllers, gateways on free loopback ports), and clients talk to it
through httpx's ASGI transport, so the API, the approval gate's replay and the controllers
are the real ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from berth.clock import ManualClock
from berth.config import Settings
from berth.domain import accounts
from berth.domain.context import Domain
from berth.runtime.memory import MemoryRuntime
from berth.server.app import create_app
from berth.testing.server import free_port


@dataclass
class InProcessBerth:
    domain: Domain
    runtime: MemoryRuntime
    clock: ManualClock
    transport: httpx.ASGITransport
    app: FastAPI

    async def reconcile(self) -> None:
        """One reconcile pass of the app's own reconciler, and what it started, to the end."""
        reconciler = self.app.state.controllers.reconciler
        await reconciler.reconcile_once()
        await reconciler.settle()

    def client(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self.transport,
            base_url="http://berth.test",
            headers={"Authorization": f"Bearer {token}"},
        )

    async def user(self, email: str) -> tuple[str, str, str]:
        """A new user: (user id, an API key as an agent uses, a session token for its human)."""
        user, _kit = await accounts.create_user(self.domain, email=email)
        key = await accounts.create_api_key(self.domain, user_id=user.id, operator=False)
        session = await accounts.issue_session_token(self.domain, user.id, ttl_seconds=None)
        return user.id, key.key, session


@asynccontextmanager
async def berth_in_process(data_dir: Path, **settings: Any) -> AsyncIterator[InProcessBerth]:
    clock = ManualClock()
    runtime = MemoryRuntime(clock=clock)
    config = Settings(
        data_dir=data_dir,
        ssh_host="127.0.0.1",
        ssh_port=free_port(),
        gateway_host="127.0.0.1",
        gateway_port=free_port(),
        rate_limit_per_second=0,
        **settings,
    )
    app = create_app(config, runtime=runtime, clock=clock)
    async with app.router.lifespan_context(app):
        yield InProcessBerth(
            domain=app.state.domain,
            runtime=runtime,
            clock=clock,
            transport=httpx.ASGITransport(app=app),
            app=app,
        )
