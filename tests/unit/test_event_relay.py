"""The controllers' relay of desired-state changes: the scheduler is woken by changes of
schedules only (a `workload.changed` names its workload's type), and by any change that
names no type; the reconciler hears every change."""

from __future__ import annotations

import asyncio
import contextlib

from berth.control.loops import relay_domain_events
from berth.domain.events import Event, EventBus


async def relayed(types: frozenset[str] | None) -> list[str | None]:
    bus = EventBus()
    subscription = bus.subscribe()
    heard: list[str | None] = []
    last_heard = asyncio.Event()

    def hear(workload_id: str | None) -> None:
        heard.append(workload_id)
        if workload_id == "untyped":
            last_heard.set()

    relay = asyncio.create_task(relay_domain_events(subscription, hear, types=types))
    for workload_id, kind in [("s", "service"), ("j", "job"), ("c", "schedule")]:
        bus.publish(Event("workload.changed", workload_id=workload_id, data={"type": kind}))
    bus.publish(Event("workload.status", workload_id="s"))
    bus.publish(Event("workload.changed", workload_id="untyped"))
    await asyncio.wait_for(last_heard.wait(), 5)
    relay.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await relay
    return heard


async def test_the_scheduler_hears_changes_of_schedules_and_untyped_ones_only() -> None:
    assert await relayed(frozenset({"schedule"})) == ["c", "untyped"]


async def test_the_reconciler_hears_every_change() -> None:
    assert await relayed(None) == ["s", "j", "c", "untyped"]
