"""The periodic controllers beside the reconciler: scheduler, meter and the engine watcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from berth.control.reconciler import Reconciler
from berth.domain import labels
from berth.domain.context import Domain
from berth.domain.events import Subscription
from berth.domain.lifecycle import meter_running_runs
from berth.domain.scheduling import fire_due_schedules
from berth.runtime.base import Runtime, RuntimeDriverError

log = logging.getLogger("berth.control")

SCHEDULER_MAX_SLEEP = 5.0


async def run_scheduler(domain: Domain, wake: asyncio.Event) -> None:
    """Fire due schedules; sleep until the next fire time, a change, or a few seconds."""
    while True:
        wake.clear()
        delay = SCHEDULER_MAX_SLEEP
        try:
            earliest = await fire_due_schedules(domain, datetime.now(UTC))
            if earliest is not None:
                until = (earliest - datetime.now(UTC)).total_seconds()
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
            await meter_running_runs(domain, datetime.now(UTC))
        except Exception:
            log.exception("meter tick failed; the next tick catches up")


async def watch_engine(runtime: Runtime, reconciler: Reconciler, instance_id: str) -> None:
    """Kick the reconciler on every engine event for berth's tasks; reconnect on loss."""
    delay = 1.0
    while True:
        try:
            async for _event in runtime.events(labels.instance_selector(instance_id)):
                delay = 1.0
                reconciler.kick()
        except RuntimeDriverError as exc:
            log.warning("engine event stream lost (%s); reconnecting in %.0fs", exc, delay)
        except Exception:
            log.exception("engine event watcher failed; reconnecting in %.0fs", delay)
        reconciler.kick()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


async def relay_domain_events(
    subscription: Subscription, reconciler: Reconciler, scheduler_wake: asyncio.Event
) -> None:
    """Desired-state changes wake the reconciler and the scheduler at once."""
    async for event in subscription:
        if event.kind == "workload.changed":
            reconciler.kick()
            scheduler_wake.set()
