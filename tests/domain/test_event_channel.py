"""Events between replicas on PostgreSQL (`store.notify.EventChannel`, LISTEN/NOTIFY): two
replicas' buses on one database see each other's events once, their own never twice. On
SQLite (one process, nothing to bridge) the test is skipped."""

from __future__ import annotations

import asyncio

import pytest

from berth.domain.events import Event, EventBus, Subscription
from berth.store.notify import EventChannel
from tests.support.postgres import PostgresServer


async def next_event(sub: Subscription) -> Event:
    return await asyncio.wait_for(sub.get(), 5)


async def test_events_cross_between_two_replicas_once(
    database_url: str, postgres_server: PostgresServer | None
) -> None:
    if postgres_server is None:
        pytest.skip("PostgreSQL only (BERTH_TEST_DATABASE=postgresql)")
    buses = [EventBus(), EventBus()]
    channels = [
        EventChannel(database_url, on_message=bus.receive, on_gap=bus.resync) for bus in buses
    ]
    for bus, channel in zip(buses, channels, strict=True):
        bus.bridge(channel.send)
        await channel.start()
    a, b = buses
    try:
        on_a, on_b = a.subscribe(), b.subscribe()
        seen_a: list[str] = []
        seen_b: list[str] = []

        async def until(sub: Subscription, seen: list[str], kind: str) -> None:
            while kind not in seen:
                seen.append((await next_event(sub)).kind)

        # Each step waits for the other side, so PostgreSQL commits the notifications in
        # this order and hands them to each listener in it: an echo of a replica's own
        # event would show up in its list before the other's next event.
        a.publish(Event("one", user_id="u", workload_id="w1"))
        await until(on_b, seen_b, "one")
        b.publish(Event("two", user_id="u", workload_id="w2"))
        await until(on_a, seen_a, "two")
        a.publish(Event("fence-a"))
        await until(on_b, seen_b, "fence-a")
        b.publish(Event("fence-b"))
        await until(on_a, seen_a, "fence-b")
        await until(on_b, seen_b, "fence-b")
        assert seen_a == ["one", "two", "fence-a", "fence-b"]
        assert seen_b == ["one", "two", "fence-a", "fence-b"]
    finally:
        for channel in channels:
            await channel.stop()
