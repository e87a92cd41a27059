"""A database that goes away answers callers 503 with `Retry-After`, never 500, and berth
serves again once it is back, without a restart. On PostgreSQL (the run's server is
stopped and started under berth); on SQLite the store is a file that cannot go away.
`/readyz` says so to a load balancer, in time even when the database hangs, and without a
round trip per call."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from berth.api import readiness
from berth.store.db import Store
from berth.store.errors import StoreUnavailable
from berth.testing.waiting import poll
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

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await poll(ready, within=10, what="/readyz to answer ok again")


async def test_a_database_that_never_answers_fails_the_readiness_check_in_time() -> None:
    """A wedged server or a host dropping packets (here a listener that never answers) must
    fail `/readyz`'s check within its time, not hold it for the driver's one-minute connect
    timeout past the load balancer's own."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
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


async def test_a_connection_whose_server_stops_answering_is_dropped(
    postgres_server: PostgresServer | None,
) -> None:
    """A read on a pooled connection whose server process stops answering (here stopped
    with SIGSTOP) is cut short in time, a snapshot read and a ping alike, and its
    connection is dropped rather than handed back: the next read, on a new connection,
    succeeds while the old server process is still stopped."""
    if postgres_server is None:
        pytest.skip("PostgreSQL only (BERTH_TEST_DATABASE=postgresql)")
    store = Store(postgres_server.create("berth_hung_reads"))
    stopped: list[int] = []

    async def stop_the_pooled_backend() -> None:
        found = await store.read_first(select(func.pg_backend_pid()), {})
        assert found is not None
        stopped.append(int(found[0]))
        os.kill(stopped[-1], signal.SIGSTOP)

    async def snapshot_read() -> None:
        await store.read(lambda reader: reader.first(select(func.now()), {}), snapshot=True)

    try:
        await stop_the_pooled_backend()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await snapshot_read()
        # In time: neither a ROLLBACK nor the cancellation's confirmation is waited for.
        assert time.monotonic() - started < 1.5
        await store.ping(within=5)

        await stop_the_pooled_backend()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="TimeoutError"):
            await store.ping(within=0.5)
        assert time.monotonic() - started < 1.5
        await snapshot_read()
    finally:
        for backend in stopped:
            os.kill(backend, signal.SIGCONT)
        await store.close()
        postgres_server.drop("berth_hung_reads")


async def test_concurrent_readiness_checks_share_one_ping(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`/readyz` needs no credentials and is not rate limited: twenty calls at once cost
    the database one ping, and later calls reuse its answer while it stands."""
    monkeypatch.setattr(readiness, "REUSE_SECONDS", 600.0)  # (a second, on a slow machine)
    async with berth_in_process(data_dir) as berth:
        store = berth.domain.store
        pinged = 0
        original = store.ping

        async def counted(*, within: float) -> None:
            nonlocal pinged
            pinged += 1
            await asyncio.sleep(0.05)  # a ping under way while the others arrive
            await original(within=within)

        store.ping = counted  # type: ignore[method-assign]
        async with berth.client("") as client:
            answers = await asyncio.gather(*(client.get("/readyz") for _ in range(20)))
            assert [(a.status_code, a.text) for a in answers] == [(200, "ok")] * 20
            assert pinged == 1
            assert (await client.get("/readyz")).text == "ok"
            assert pinged == 1
