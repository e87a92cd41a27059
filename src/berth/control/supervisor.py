"""Starts and stops all controllers as one unit (owned by the application's lifespan).

Each controller runs only while this replica holds its lease (`leadership`): `reconciler`
(with the engine watcher and the relay of desired-state changes that feed it), `scheduler`,
`meter`, and whatever the server adds (`lease`, e.g. the gateway's idle scaler).
"""

from __future__ import annotations

import asyncio
import contextlib

from berth.control.leadership import Leadership, Work
from berth.control.loops import (
    relay_domain_events,
    run_meter,
    run_scheduler,
    run_session_sweeper,
    watch_engine,
)
from berth.control.reconciler import Reconciler
from berth.control.retention import run_retention
from berth.domain.context import Domain
from berth.domain.retention import RunRetention
from berth.runtime.base import Runtime

RENEWALS_PER_LEASE = 5
"""A lease is renewed this many times in its length (every 3 s of a 15 s lease)."""


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
        lease_seconds: float = 15.0,
        replica_id: str | None = None,
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
        self.leadership = Leadership(
            domain,
            replica_id=replica_id or domain.replica_id,
            lease_seconds=lease_seconds,
            renew_every=lease_seconds / RENEWALS_PER_LEASE,
        )
        self.leadership.add("reconciler", self._reconcile)
        self.leadership.add("scheduler", self._schedule)
        self.leadership.add("meter", lambda: run_meter(self.domain, self.meter_interval))
        self.leadership.add(
            "sessions", lambda: run_session_sweeper(self.domain, interval=lease_seconds)
        )
        if retention is not None:
            self.leadership.add(
                "retention", lambda: run_retention(self.domain, retention, retention_interval)
            )
        self._task: asyncio.Task[None] | None = None

    def lease(self, name: str, work: Work) -> None:
        """Run `work` too, only while this replica holds lease `name` (before `start`)."""
        self.leadership.add(name, work)

    def start_now(self, run_id: str) -> None:
        """`Reconciler.start_now` on the replica running the reconciler; elsewhere nothing
        (the change that promoted the run reaches that replica as an event)."""
        if self.leadership.holds("reconciler"):
            self.reconciler.start_now(run_id)

    def start(self) -> None:
        self._task = asyncio.create_task(self.leadership.run_forever(), name="leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.leadership.stop()
        await self.reconciler.cancel_inflight()

    async def _reconcile(self) -> None:
        """The reconciler with what feeds it: engine events and desired-state changes."""
        subscription = self.domain.bus.subscribe()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.reconciler.run_forever(), name="reconciler")
                group.create_task(
                    watch_engine(self.runtime, self.reconciler, self.instance_id),
                    name="engine-watch",
                )
                group.create_task(
                    relay_domain_events(subscription, self.reconciler.workload_changed),
                    name="relay",
                )
        finally:
            subscription.close()
            await self.reconciler.cancel_inflight()

    async def _schedule(self) -> None:
        """The scheduler, woken at once by desired-state changes."""
        wake = asyncio.Event()
        subscription = self.domain.bus.subscribe()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(run_scheduler(self.domain, wake), name="scheduler")
                group.create_task(
                    relay_domain_events(
                        subscription, lambda _id: wake.set(), types=frozenset({"schedule"})
                    ),
                    name="wake",
                )
        finally:
            subscription.close()
