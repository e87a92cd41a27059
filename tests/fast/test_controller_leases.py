"""Controllers run only on the replica holding their lease (`berth.control.leadership`):
two replicas (two stores on one database) with a manual clock, each round driven by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from berth.clock import ManualClock
from berth.config import Settings
from berth.control.leadership import Leadership, Work
from berth.domain import leases
from berth.domain.context import Domain
from berth.server.bootstrap import open_domain
from berth.store.db import Store

LEASE = 15.0
UNREACHABLE = "postgresql+asyncpg://nobody@127.0.0.1:9/none"
"""A database no connection reaches (port 9 refuses at once)."""


class Replica:
    """One replica's leadership over one controller that records whether it runs."""

    def __init__(self, domain: Domain, name: str) -> None:
        self.domain = domain
        self.leadership = Leadership(
            domain,
            replica_id=name,
            lease_seconds=LEASE,
            renew_every=LEASE / 5,
            monotonic=lambda: self.now,
        )
        self.now = 0.0
        """The replica's local clock, moved by hand."""
        self.running = False
        self.leadership.add("scheduler", self._work())

    def _work(self) -> Work:
        async def work() -> None:
            self.running = True
            try:
                await asyncio.Event().wait()
            finally:
                self.running = False

        return work

    async def round(self) -> None:
        await self.leadership.renew_once()
        await asyncio.sleep(0)  # a controller just started has begun


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def replicas(data_dir: Path, clock: ManualClock) -> AsyncIterator[tuple[Replica, Replica]]:
    domains = [await open_domain(Settings(data_dir=data_dir), clock=clock) for _ in range(2)]
    pair = (Replica(domains[0], "a"), Replica(domains[1], "b"))
    try:
        yield pair
    finally:
        for replica in pair:
            await replica.leadership.stop()
            await replica.domain.store.close()


async def test_only_the_holder_runs_the_controller(replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    await a.round()
    await b.round()
    assert (a.running, b.running) == (True, False)
    assert a.leadership.holds("scheduler") and not b.leadership.holds("scheduler")


async def test_renewing_keeps_the_controller_where_it_runs(
    replicas: tuple[Replica, Replica], clock: ManualClock
) -> None:
    a, b = replicas
    await a.round()
    for _ in range(10):
        clock.advance(LEASE / 5)
        await b.round()
        await a.round()
        assert (a.running, b.running) == (True, False)


async def test_a_silent_holder_is_taken_over_after_the_lease_and_then_stops(
    replicas: tuple[Replica, Replica], clock: ManualClock
) -> None:
    """`a` stops renewing (as a killed or stalled replica would): `b` takes the controller
    over once the lease lapsed, not before; `a`, back, stops its controller."""
    a, b = replicas
    await a.round()
    clock.advance(LEASE - 0.5)
    await b.round()
    assert not b.running
    clock.advance(0.5)
    await b.round()
    assert b.running
    await a.round()
    assert (a.running, b.running) == (False, True)
    assert (await leases.holders(a.domain))["scheduler"][0] == "b"


async def test_stopping_gives_the_lease_up_at_once(replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    await a.round()
    await a.leadership.stop()
    await b.round()
    assert (a.running, b.running) == (False, True)


async def test_a_holder_that_cannot_renew_stops_before_its_lease_lapses(
    replicas: tuple[Replica, Replica],
) -> None:
    """With the database away, `a` keeps its controller only while the lease it last
    renewed surely holds, then stops it, before another replica could take it over."""
    a, _b = replicas
    await a.round()
    a.leadership.domain = replace(a.domain, store=Store(UNREACHABLE))
    try:
        await a.round()
        assert a.running  # renewed moments ago: still surely held
        a.now += LEASE * 0.8
        await a.round()
        assert not a.running
    finally:
        await a.leadership.domain.store.close()
        a.leadership.domain = a.domain
