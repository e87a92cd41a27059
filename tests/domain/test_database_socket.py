"""berth on PostgreSQL through the server's unix socket (`?host=<directory>` in the URL), as
an operator points it at a database on the same machine: writes, the prepared reads and the
event channel between replicas all connect there. On SQLite the test is skipped."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import bindparam, make_url, select, text

from berth.domain.events import Event, EventBus
from berth.store.db import Store
from berth.store.models import Company
from berth.store.notify import EventChannel
from tests.support.postgres import PostgresServer

_COMPANY_NAME = select(Company.name).where(Company.id == bindparam("company_id"))


async def test_store_and_events_work_over_the_unix_socket(
    database_url: str, postgres_server: PostgresServer | None
) -> None:
    if postgres_server is None:
        pytest.skip("PostgreSQL only (BERTH_TEST_DATABASE=postgresql)")
    database = make_url(database_url).database
    assert database is not None
    url = postgres_server.socket_url(database)
    store = Store(url)
    bus = EventBus()
    channel = EventChannel(url, on_message=bus.receive, on_gap=bus.resync)
    try:
        async with store.transaction() as session:
            session.add(Company(id="co_socket", name="Socket"))
            # An empty server address is what PostgreSQL reports for a unix-socket client.
            assert (await session.scalar(text("SELECT inet_server_addr()"))) is None
        found = await store.read_first(_COMPANY_NAME, {"company_id": "co_socket"})
        assert found == ("Socket",)

        # A second "replica" hears the first's event through the channel on the socket.
        other = EventBus()
        other_channel = EventChannel(url, on_message=other.receive, on_gap=other.resync)
        bus.bridge(channel.send)
        await channel.start()
        await other_channel.start()
        try:
            heard = other.subscribe()
            bus.publish(Event("socket.test", workload_id="w1"))
            event = await asyncio.wait_for(heard.get(), 5)
            assert (event.kind, event.workload_id) == ("socket.test", "w1")
        finally:
            await other_channel.stop()
    finally:
        await channel.stop()
        await store.close()
