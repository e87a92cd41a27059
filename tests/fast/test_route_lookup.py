"""The gateway's lookup of a workload its routes do not know yet: a service created a moment
ago is found with one read, and requests for names nobody serves stay a bounded number of
reads however many arrive."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from berth.domain import workloads
from berth.domain.auth import Actor
from berth.gateway.http.route_lookup import LOOKUP_BURST, LOOKUPS_PER_SECOND, RouteLookup
from berth.gateway.http.route_table import Route, RouteTable
from berth.schemas.workloads import WorkloadCreate
from berth.token_buckets import TokenBuckets
from tests.fast.platform import Platform
from tests.support.statements import counted_statements

HTTP_PORT = 8080


@pytest.fixture
async def selects(platform: Platform) -> AsyncIterator[list[str]]:
    """The SELECT statements the store runs from now on, on either read path."""
    async with counted_statements(platform.domain.store) as seen:
        yield seen


def lookup_for(platform: Platform) -> tuple[RouteTable, RouteLookup]:
    """A lookup whose budget of reads does not refill while a test runs (its clock stands)."""
    table = RouteTable("localhost")
    budget = TokenBuckets(rate=LOOKUPS_PER_SECOND, burst=LOOKUP_BURST, clock=lambda: 0.0)
    lookup = RouteLookup(
        platform.domain, table, http_port=HTTP_PORT, https_port=None, budget=budget
    )
    return table, lookup


async def create_service(platform: Platform, actor: Actor) -> str:
    body = WorkloadCreate(
        name="fresh",
        type="service",
        image="berth/busybox:latest",
        command="httpd -f -p 8080",
        port=8080,
    )
    return (await workloads.create_workload(platform.domain, actor, body)).workload.id


async def test_a_service_the_table_does_not_know_is_found_and_joins_the_table(
    platform: Platform, actor: Actor
) -> None:
    table, lookup = lookup_for(platform)
    older_read = table.begin_read()  # a whole-table reload that began before the create
    service = await create_service(platform, actor)

    route = await lookup.find(service, HTTP_PORT)

    assert route == Route(service, ())  # known, with no running task yet
    assert table.resolve(f"{service}.localhost", HTTP_PORT) == route
    # The reload that read the store before the service existed does not drop it.
    table.set_routes({}, read=older_read)
    assert table.resolve(f"{service}.localhost", HTTP_PORT) == route
    # One that read after the lookup knows better.
    table.set_routes({}, read=table.begin_read())
    assert table.resolve(f"{service}.localhost", HTTP_PORT) is None


async def test_concurrent_requests_for_one_unknown_name_make_one_read(
    platform: Platform, selects: list[str]
) -> None:
    _table, lookup = lookup_for(platform)
    name = secrets.token_hex(6)

    found = await asyncio.gather(*(lookup.find(name, HTTP_PORT) for _ in range(200)))
    assert found == [None] * 200
    assert len(selects) == 1
    # Asked again at once: answered from what was just read.
    assert await lookup.find(name, HTTP_PORT) is None
    assert len(selects) == 1
    # An event about the workload lets the next request look again.
    lookup.forget(name)
    assert await lookup.find(name, HTTP_PORT) is None
    assert len(selects) == 2


async def test_a_flood_of_unknown_names_is_a_bounded_number_of_reads(
    platform: Platform, selects: list[str]
) -> None:
    _table, lookup = lookup_for(platform)
    names = [secrets.token_hex(6) for _ in range(1000)]

    found = await asyncio.gather(*(lookup.find(name, HTTP_PORT) for name in names))
    assert found == [None] * 1000
    assert len(selects) == LOOKUP_BURST
    # Names that are not workload ids are never looked up.
    for name in ("www", "api", "not-an-id", "ABCDEF012345", "0123456789abc"):
        assert await lookup.find(name, HTTP_PORT) is None
    assert len(selects) == LOOKUP_BURST
