"""A database that goes away answers callers 503 with `Retry-After`, never 500, and berth
serves again once it is back, without a restart. On PostgreSQL (the run's server is
stopped and started under berth); on SQLite the store is a file that cannot go away."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from berth.store.db import Store
from berth.store.errors import StoreUnavailable
from berth.testing.server import free_port
from tests.fast.app import berth_in_process
from tests.support.postgres import PostgresServer


async def test_a_stopped_database_is_a_503_with_retry_after_and_berth_recovers(
    data_dir: Path, postgres_server: PostgresServer | None
) -> None:
    if postgres_server is None:
        pytest.skip("PostgreSQL only (BERTH_TEST_DATABASE=postgresql)")
    async with berth_in_process(data_dir) as berth:
        _user_id, key, _session = await berth.user("dev@example.com")
        async with berth.client(key) as client:
            assert (await client.get("/v1/compute")).status_code == 200
            postgres_server.halt()
            try:
                for method, path in (
                    ("GET", "/v1/compute"),
                    ("POST", "/compute/ssh-keys"),
                    ("GET", "/readyz"),  # a load balancer takes the replica out
                ):
                    body = {"name": "k", "public_key": "ssh-ed25519 AAAA"}
                    answer = await client.request(method, path, json=body)
                    assert answer.status_code == 503, answer.text
                    assert answer.headers["Retry-After"] == "1"
                    assert answer.json()["code"] == "database_unavailable"
            finally:
                postgres_server.resume()
            assert (await client.get("/v1/compute")).status_code == 200
            assert (await client.get("/readyz")).text == "ok"


async def test_a_database_that_never_answers_fails_the_readiness_check_in_time() -> None:
    """A wedged server or a host dropping packets (here a listener that never answers) must
    fail `/readyz`'s check within its time, not hold it for the driver's one-minute connect
    timeout past the load balancer's own."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", free_port()))
        silent.listen()
        port = silent.getsockname()[1]
        store = Store(f"postgresql+asyncpg://berth@127.0.0.1:{port}/berth")
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="TimeoutError"):
                await store.ping(within=0.5)
            assert time.monotonic() - started < 5
        finally:
            await store.close()
