"""Starts and stops all controllers as one unit (owned by the application's lifespan)."""

from __future__ import annotations

import asyncio
import contextlib

from berth.control.loops import relay_domain_events, run_meter, run_scheduler, watch_engine
from berth.control.reconciler import Reconciler
from berth.control.retention import run_retention
from berth.domain.context import Domain
from berth.domain.retention import RunRetention
from berth.runtime.base import Runtime


class Controllers:
    def __init__(
        self,
        domain: Domain,
        runtime: Runtime,
        *,
        instance_id: str,
        reconcile_interval: float,
        meter_interval: float,
        stop_grace: float,
        backoff_max: float,
        log_max_bytes: int,
        retention: RunRetention | None = None,
        retention_interval: float = 60.0,
    ) -> None:
        self.domain = domain
        self.runtime = runtime
        self.instance_id = instance_id
        self.meter_interval = meter_interval
        self.reconciler = Reconciler(
            domain,
            runtime,
            instance_id=instance_id,
            interval=reconcile_interval,
            stop_grace=stop_grace,
            backoff_max=backoff_max,
            log_max_bytes=log_max_bytes,
        )
        self.retention = retention
        self.retention_interval = retention_interval
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        scheduler_wake = asyncio.Event()
        subscription = self.domain.bus.subscribe()
        self._tasks = [
            asyncio.create_task(self.reconciler.run_forever(), name="reconciler"),
            asyncio.create_task(run_scheduler(self.domain, scheduler_wake), name="scheduler"),
            asyncio.create_task(run_meter(self.domain, self.meter_interval), name="meter"),
            asyncio.create_task(
                watch_engine(self.runtime, self.reconciler, self.instance_id), name="engine-watch"
            ),
            asyncio.create_task(
                relay_domain_events(subscription, self.reconciler, scheduler_wake), name="relay"
            ),
        ]
        if self.retention is not None:
            pruning = run_retention(self.domain, self.retention, self.retention_interval)
            self._tasks.append(asyncio.create_task(pruning, name="retention"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.reconciler.cancel_inflight()
