"""The periodic controllers beside the reconciler: scheduler, meter, session sweeper and
the engine watcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from berth.control.reconciler import Reconciler
from berth.domain import labels
from berth.domain.context import Domain
from berth.domain.events import Subscription
from berth.domain.lifecycle import meter_running_runs
from berth.domain.scheduling import fire_due_schedules
from berth.domain.shells import end_orphaned_sessions
from berth.runtime.base import Runtime, RuntimeDriverError

log = logging.getLogger("berth.control")

SCHEDULER_MAX_SLEEP = 5.0


async def run_scheduler(domain: Domain, wake: asyncio.Event) -> None:
    """Fire due schedules; sleep until the next fire time, a change, or a few seconds."""
    while True:
        wake.clear()
        delay = SCHEDULER_MAX_SLEEP
        try:
            earliest = await fire_due_schedules(domain, domain.clock.now())
            if earliest is not None:
                until = (earliest - domain.clock.now()).total_seconds()
                delay = max(0.05, min(delay, until))
        except Exception:
            log.exception("scheduler pass failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), delay)


async def run_meter(domain: Domain, interval: float) -> None:
    """Accrue usage of running tasks every `interval` seconds."""
    while True:
        await asyncio.sleep(interval)
        try:
            await meter_running_runs(domain, domain.clock.now())
        except Exception:
            log.exception("meter tick failed; the next tick catches up")


async def run_session_sweeper(domain: Domain, interval: float) -> None:
    """Every `interval` seconds, end the shell sessions of replicas that are gone
    (`shells.end_orphaned_sessions`)."""
    while True:
        await asyncio.sleep(interval)
        try:
            if ended := await end_orphaned_sessions(domain):
                log.info("ended %d shell sessions of replicas that are gone", ended)
        except Exception:
            log.exception("session sweep failed; the next sweep catches up")


WATCH_RETRY_MAX = 8.0
"""Most seconds between attempts to re-subscribe to a lost engine event stream."""


async def watch_engine(runtime: Runtime, reconciler: Reconciler, instance_id: str) -> None:
    """Hand every engine event for berth's tasks to the reconciler; reconnect on loss.

    Once the engine answers again after a loss, the reconciler is kicked before the stream
    is re-subscribed: what happened while the stream was away (tasks killed by an engine
    restart) is caught up by that pass, not left to the periodic one.
    """
    delay = 1.0
    lost = False
    while True:
        try:
            await runtime.ping()
            if lost:
                log.warning("container engine answers again; re-subscribed to its events")
                lost = False
                reconciler.kick()
            delay = 1.0
            async for event in runtime.events(labels.instance_selector(instance_id)):
                reconciler.engine_event(event)
        except RuntimeDriverError as exc:
            if not lost:
                log.warning("engine event stream lost (%s); reconnecting", exc)
            lost = True
        except Exception:
            log.exception("engine event watcher failed; reconnecting in %.0fs", delay)
            lost = True
        reconciler.kick()
        await asyncio.sleep(delay)
        delay = min(delay * 2, WATCH_RETRY_MAX)


async def relay_domain_events(
    subscription: Subscription,
    changed: Callable[[str | None], None],
    *,
    types: frozenset[str] | None = None,
) -> None:
    """Hand each desired-state change (`workload.changed`) to `changed` (the reconciler,
    which launches what it asks for at once, or the scheduler's wake-up); with `types`,
    only changes of workloads of those types (and changes naming no type)."""
    async for event in subscription:
        if event.kind != "workload.changed":
            continue
        kind = event.data.get("type")
        if types is None or kind is None or kind in types:
            changed(event.workload_id)
