"""A busy berth on PostgreSQL keeps its database connections: concurrent requests, round
after round, reuse the pool's connections (and the statements prepared on them) instead of
opening new ones, each a server process for PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.fast.app import berth_in_process
from tests.support.postgres import PostgresServer

ROUNDS = 10
CONCURRENT = 8


async def _connections_opened(data_dir: Path, **settings: Any) -> int:
    async with berth_in_process(data_dir, **settings) as berth:
        _user_id, key, _session = await berth.user("dev@example.com")
        opened = 0

        def count(*_args: Any) -> None:
            nonlocal opened
            opened += 1

        event.listen(berth.domain.store.engine.sync_engine, "connect", count)
        async with berth.client(key) as client:
            for _ in range(ROUNDS):
                answers = await asyncio.gather(
                    *(client.get("/v1/compute/nope/runs") for _ in range(CONCURRENT)),
                    *(client.get("/compute/ssh-keys") for _ in range(CONCURRENT)),
                )
                assert {a.status_code for a in answers} <= {200, 404}, answers
        return opened


async def test_concurrent_requests_reuse_the_pools_connections(
    data_dir: Path, postgres_server: PostgresServer | None
) -> None:
    if postgres_server is None:
        pytest.skip("PostgreSQL only (BERTH_TEST_DATABASE=postgresql)")
    opened = await _connections_opened(data_dir)
    # At most the pool's size (32): every connection opened was kept. A pool smaller than
    # the peak (about 8 here, far under the pool, so the bound holds on a slow machine)
    # closes and opens connections all the time: 5 kept and 10 more while busy opened 109
    # for these rounds.
    assert opened <= 32, f"{opened} connections opened for {ROUNDS} rounds of requests"
