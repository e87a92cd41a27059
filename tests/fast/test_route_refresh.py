"""The gateway's routes follow changes at the cost of the changed workloads only: an event
naming a workload reloads that workload's routes, and the whole table is rebuilt only at
start, when events were lost or named no workload, for a burst naming many workloads, and
on the refresher's interval."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from berth.domain import labels, workloads
from berth.domain.auth import Actor
from berth.domain.events import Event
from berth.gateway.http import route_refresh
from berth.gateway.http.route_refresh import TARGETED_MAX, RouteRefresher
from berth.gateway.http.route_table import Route, RouteTable
from berth.schemas.workloads import WorkloadCreate
from berth.testing.waiting import poll_until
from tests.fast.platform import Platform

HTTP_PORT = 8080


class Refreshing:
    """A started refresher with a count of its whole-table reloads."""

    def __init__(self, refresher: RouteRefresher, table: RouteTable) -> None:
        self.refresher = refresher
        self.table = table
        self.full_reloads = 0

    def route(self, workload_id: str) -> Route | None:
        return self.table.resolve(f"{workload_id}.localhost", HTTP_PORT)


@pytest.fixture
async def refreshing(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Refreshing]:
    table = RouteTable("localhost")
    refresher = RouteRefresher(
        platform.domain, table, http_port=HTTP_PORT, https_port=None, interval=3600
    )
    state = Refreshing(refresher, table)
    whole_table = route_refresh.load_routes

    async def counted(*args: Any, **kwargs: Any) -> Any:
        state.full_reloads += 1
        return await whole_table(*args, **kwargs)

    monkeypatch.setattr(route_refresh, "load_routes", counted)
    await refresher.start()
    try:
        yield state
    finally:
        await refresher.stop()


async def create_services(platform: Platform, actor: Actor, count: int) -> list[str]:
    ids = []
    for number in range(count):
        body = WorkloadCreate(
            name=f"web-{number}",
            type="service",
            image="berth/busybox:latest",
            command="httpd -f -p 8080",
            port=8080,
            replicas=0,
        )
        ids.append((await workloads.create_workload(platform.domain, actor, body)).workload.id)
    return ids


async def settled(check: Any) -> Any:
    """Poll `check` (a refresher works in its own task) for up to 5 s; its last answer."""

    async def probe() -> Any:
        return check()

    return await poll_until(probe, within=5.0)


async def test_a_change_reloads_the_changed_workloads_routes_only(
    platform: Platform, actor: Actor, refreshing: Refreshing
) -> None:
    services = await create_services(platform, actor, 3)
    assert await settled(lambda: all(refreshing.route(s) for s in services))
    assert refreshing.full_reloads == 1  # the start's; each create reloaded its service only

    await workloads.delete_workload(platform.domain, actor, services[0])

    assert await settled(lambda: refreshing.route(services[0]) is None)
    assert refreshing.route(services[1]) == Route(services[1], ())
    assert refreshing.route(services[2]) == Route(services[2], ())
    assert refreshing.full_reloads == 1


async def test_lost_events_and_events_naming_no_workload_rebuild_the_whole_table(
    platform: Platform, refreshing: Refreshing
) -> None:
    platform.domain.bus.resync()  # events of other replicas may have been missed

    assert await settled(lambda: refreshing.full_reloads == 2)


async def test_a_burst_naming_many_workloads_rebuilds_the_whole_table(
    platform: Platform, refreshing: Refreshing
) -> None:
    for number in range(TARGETED_MAX + 1):
        platform.domain.bus.publish(Event("workload.changed", workload_id=f"w{number}"))

    assert await settled(lambda: refreshing.full_reloads == 2)


async def test_a_workload_with_no_active_run_is_routed_nowhere_without_asking_the_engine(
    platform: Platform, actor: Actor, refreshing: Refreshing, monkeypatch: pytest.MonkeyPatch
) -> None:
    listings: list[Any] = []
    list_tasks = platform.runtime.list_tasks

    async def counted(selector: Any) -> Any:
        listings.append(selector)
        return await list_tasks(selector)

    monkeypatch.setattr(platform.runtime, "list_tasks", counted)
    (asleep,) = await create_services(platform, actor, 1)
    assert await settled(lambda: refreshing.route(asleep) == Route(asleep, ()))
    assert listings == []

    await workloads.scale_workload(platform.domain, actor, asleep, count=1)
    await platform.reconcile()  # its run starts
    assert await settled(lambda: len((refreshing.route(asleep) or Route(asleep, ())).upstreams))
    # A running task's address comes from the engine: its workload's tasks were listed.
    assert labels.workload_selector(platform.domain.instance_id, asleep) in listings


async def test_a_change_of_a_job_or_a_schedule_reads_no_routes(
    platform: Platform, refreshing: Refreshing, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_for: list[str] = []
    one_workload = route_refresh.load_workload_routes

    async def counted(domain: Any, workload_id: str, **kwargs: Any) -> Any:
        read_for.append(workload_id)
        return await one_workload(domain, workload_id, **kwargs)

    monkeypatch.setattr(route_refresh, "load_workload_routes", counted)
    for workload_id, kind in [("job-1", "job"), ("sched-1", "schedule"), ("web-1", "service")]:
        platform.domain.bus.publish(
            Event("workload.changed", workload_id=workload_id, data={"type": kind})
        )

    assert await settled(lambda: "web-1" in read_for)
    assert read_for == ["web-1"]
    assert refreshing.full_reloads == 1
