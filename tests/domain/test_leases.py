"""Controller leases (`berth.domain.leases`) on the store of the run, SQLite or PostgreSQL,
with a manual clock: one holder at a time, renewal keeps a lease, expiry lets another take
it over, and of many replicas trying at once exactly one wins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from berth.clock import ManualClock
from berth.config import Settings
from berth.domain import leases
from berth.domain.context import Domain
from berth.server.bootstrap import open_domain

LEASE = 15.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def domain(data_dir: Path, clock: ManualClock) -> AsyncIterator[Domain]:
    d = await open_domain(Settings(data_dir=data_dir), clock=clock)
    yield d
    await d.store.close()


async def test_the_first_holder_keeps_the_lease_from_a_second(domain: Domain) -> None:
    assert await leases.hold(domain, "scheduler", "a", seconds=LEASE)
    assert not await leases.hold(domain, "scheduler", "b", seconds=LEASE)
    assert (await leases.holders(domain))["scheduler"][0] == "a"


async def test_leases_are_independent_of_each_other(domain: Domain) -> None:
    assert await leases.hold(domain, "scheduler", "a", seconds=LEASE)
    assert await leases.hold(domain, "meter", "b", seconds=LEASE)


async def test_renewal_keeps_the_lease_past_its_first_expiry(
    domain: Domain, clock: ManualClock
) -> None:
    assert await leases.hold(domain, "meter", "a", seconds=LEASE)
    for _ in range(5):
        clock.advance(LEASE * 0.6)
        assert await leases.hold(domain, "meter", "a", seconds=LEASE)
        assert not await leases.hold(domain, "meter", "b", seconds=LEASE)


async def test_another_takes_over_a_lease_once_it_expired(
    domain: Domain, clock: ManualClock
) -> None:
    assert await leases.hold(domain, "reconciler", "a", seconds=LEASE)
    clock.advance(LEASE - 1)
    assert not await leases.hold(domain, "reconciler", "b", seconds=LEASE)
    clock.advance(1)
    assert await leases.hold(domain, "reconciler", "b", seconds=LEASE)
    # The old holder, back, finds it taken and cannot renew it.
    assert not await leases.hold(domain, "reconciler", "a", seconds=LEASE)
    assert (await leases.holders(domain))["reconciler"][0] == "b"


async def test_a_released_lease_is_taken_at_once(domain: Domain) -> None:
    assert await leases.hold(domain, "meter", "a", seconds=LEASE)
    await leases.release(domain, "meter", "b")  # not b's: nothing happens
    assert not await leases.hold(domain, "meter", "b", seconds=LEASE)
    await leases.release(domain, "meter", "a")
    assert await leases.hold(domain, "meter", "b", seconds=LEASE)


@pytest.mark.parametrize("expired_first", [False, True], ids=["new", "expired"])
async def test_exactly_one_of_many_concurrent_attempts_wins(
    data_dir: Path, domain: Domain, clock: ManualClock, expired_first: bool
) -> None:
    """Replicas are separate stores (connection pools) on one database, racing for a lease
    that does not exist yet or whose holder let it lapse."""
    if expired_first:
        assert await leases.hold(domain, "scheduler", "gone", seconds=LEASE)
        clock.advance(LEASE + 1)
    replicas = [await open_domain(Settings(data_dir=data_dir), clock=clock) for _ in range(4)]
    try:
        attempts = [
            leases.hold(replica, "scheduler", f"r{n}-{k}", seconds=LEASE)
            for n, replica in enumerate(replicas)
            for k in range(5)
        ]
        won = await asyncio.gather(*attempts)
    finally:
        for replica in replicas:
            await replica.store.close()
    assert sum(won) == 1
    winner = next(n for n, w in enumerate(won) if w)
    holder = (await leases.holders(domain))["scheduler"][0]
    assert holder == f"r{winner // 5}-{winner % 5}"
