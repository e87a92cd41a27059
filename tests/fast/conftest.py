"""The fast tier: berth's domain and controllers on a real SQLite store in a temporary
directory, the in-memory runtime and a manual clock. No root, no engine, no sleeping: a test
drives one reconcile pass at a time (`Platform.reconcile`) and moves time itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from berth.clock import ManualClock
from berth.config import Settings
from berth.domain import accounts
from berth.domain.auth import Actor, Principal
from berth.runtime.memory import MemoryRuntime
from berth.server.bootstrap import open_domain
from tests.fast.platform import Platform


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def platform(data_dir: Path, clock: ManualClock) -> AsyncIterator[Platform]:
    runtime = MemoryRuntime(clock=clock)
    domain = await open_domain(Settings(data_dir=data_dir), runtime=runtime, clock=clock)
    berth = Platform(domain, runtime, clock)
    try:
        yield berth
    finally:
        await berth.reconciler.cancel_inflight()
        await runtime.close()
        await domain.store.close()


@pytest.fixture
async def actor(platform: Platform) -> Actor:
    """A user acting with an API key (no approvals are gated in these tests' company)."""
    user, _kit = await accounts.create_user(platform.domain, email="dev@example.com")
    principal = Principal(
        company_id=user.company_id, user_id=user.id, is_operator=False, kind="api_key"
    )
    return Actor(user_id=user.id, company_id=user.company_id, principal=principal)
