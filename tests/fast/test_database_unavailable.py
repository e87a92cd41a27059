"""A database that goes away answers callers 503 with `Retry-After`, never 500, and berth
serves again once it is back, without a restart. On PostgreSQL (the run's server is
stopped and started under berth); on SQLite the store is a file that cannot go away."""

from __future__ import annotations

from pathlib import Path

import pytest

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
                for method, path in (("GET", "/v1/compute"), ("POST", "/compute/ssh-keys")):
                    body = {"name": "k", "public_key": "ssh-ed25519 AAAA"}
                    answer = await client.request(method, path, json=body)
                    assert answer.status_code == 503, answer.text
                    assert answer.headers["Retry-After"] == "1"
                    assert answer.json()["code"] == "database_unavailable"
            finally:
                postgres_server.resume()
            assert (await client.get("/v1/compute")).status_code == 200
