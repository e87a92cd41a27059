"""Domain tests: the real store (SQLite in a temporary data directory), no engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from berth.config import Settings
from berth.domain import accounts
from berth.domain.auth import Actor, Principal
from berth.domain.context import Domain
from berth.server.bootstrap import open_domain


@pytest.fixture
async def domain(data_dir: Path) -> AsyncIterator[Domain]:
    d = await open_domain(Settings(data_dir=data_dir))
    yield d
    await d.store.close()


@pytest.fixture
async def actor(domain: Domain) -> Actor:
    user, _kit = await accounts.create_user(domain, email="dev@example.com")
    principal = Principal(
        company_id=user.company_id, user_id=user.id, is_operator=False, kind="api_key"
    )
    return Actor(user_id=user.id, company_id=user.company_id, principal=principal)
