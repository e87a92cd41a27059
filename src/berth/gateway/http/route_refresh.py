"""Keeps the HTTP gateway's routing table in step with the store and the engine.

A full reload builds the whole table (`load_routes`) and swaps it in at once, so requests in
flight are never dropped by a change. Events about workloads (tasks starting or finishing,
workloads changed or gone, ingress rules changed; bursts coalesced) reload only the routes
of the workloads they name (`load_workload_routes`: one indexed read and a listing of those
workloads' tasks), so what a change costs does not grow with the number of routed workloads,
and every replica follows every other's changes at that cost. The whole table is reloaded
at start, after events were lost or one named no workload, when a burst names more than
`TARGETED_MAX` workloads, and every `interval` seconds to catch anything missed. A request
that arrives before the reload that follows a change finds a workload the table does not
know through `route_lookup`; an event about a workload tells that lookup (`on_change`) it
may look again at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from berth.domain.context import Domain
from berth.domain.events import Event, Subscription
from berth.gateway.http.route_table import RouteTable, load_routes, load_workload_routes
from berth.runtime.base import RuntimeDriverError

log = logging.getLogger("berth.gateway")

ROUTING_EVENTS = frozenset(
    {
        "run.started",
        "task.started",
        "run.finished",
        "workload.changed",
        "workload.status",
        "workload.deleted",
        "ingress.changed",
    }
)
NEVER_ROUTED = frozenset({"job", "schedule"})
"""Workload types the gateway never routes to: a change of one (its `workload.changed` names
the type) leaves the table as it is."""
COALESCE_SECONDS = 0.005
TARGETED_MAX = 16
"""A burst of events naming more workloads than this reloads the whole table instead."""


class RouteRefresher:
    def __init__(
        self,
        domain: Domain,
        table: RouteTable,
        *,
        http_port: int,
        https_port: int | None,
        interval: float,
        on_reload: Callable[[], Awaitable[None]] | None = None,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        """`on_reload` runs after each reload; `on_change(workload_id)` as soon as an event
        about a workload's routes arrives, before the reload it leads to."""
        self._domain = domain
        self._table = table
        self._http_port = http_port
        self._https_port = https_port
        self._interval = interval
        self._on_reload = on_reload
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None

    async def reload(self) -> None:
        """Rebuild the whole table."""
        read = self._table.begin_read()
        try:
            routes = await load_routes(
                self._domain, http_port=self._http_port, https_port=self._https_port
            )
        except RuntimeDriverError as exc:
            log.warning("routes not refreshed, the engine cannot be read: %s", exc)
            return
        self._table.set_routes(routes, read=read)
        if self._on_reload is not None:
            await self._on_reload()

    async def reload_workloads(self, workload_ids: set[str]) -> None:
        """Replace the routes of these workloads only (none left: they leave the table)."""
        for workload_id in sorted(workload_ids):
            read = self._table.begin_read()
            try:
                routes = await load_workload_routes(
                    self._domain,
                    workload_id,
                    http_port=self._http_port,
                    https_port=self._https_port,
                )
            except RuntimeDriverError as exc:
                log.warning("routes not refreshed, the engine cannot be read: %s", exc)
                return
            self._table.add_found(workload_id, routes, read=read)
        if self._on_reload is not None:
            await self._on_reload()

    async def start(self) -> None:
        await self.reload()
        events = self._domain.bus.subscribe()
        self._task = asyncio.create_task(self._run(events), name="route-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _changed(self, workload_id: str | None) -> None:
        if workload_id is not None and self._on_change is not None:
            self._on_change(workload_id)

    def _hold_if_paused(self, event: Event) -> None:
        """A workload that was paused leaves its routes at once, before the reload: its
        frozen tasks would hold a request until the upstream timeout, where the waker
        resumes it."""
        if (
            event.kind == "workload.status"
            and event.workload_id is not None
            and event.data.get("status") == "paused"
        ):
            self._table.hold(event.workload_id)

    async def _run(self, events: Subscription) -> None:
        loop = asyncio.get_running_loop()
        full_due = loop.time() + self._interval
        try:
            while True:
                changed: set[str] = set()
                full = False
                try:
                    # Not `asyncio.wait_for`: on Python 3.11 it swallows a cancellation that
                    # arrives as an event does, and `stop` would then wait forever.
                    async with asyncio.timeout(max(full_due - loop.time(), 0.0)):
                        event = await events.get()
                    if not _routing(event):
                        continue
                    batch = [event]
                    if event.kind not in ("run.started", "task.started"):  # no waiting
                        await asyncio.sleep(COALESCE_SECONDS)
                    batch += events.take_waiting()  # one reload covers them
                    for each in batch:
                        if not _routing(each):
                            continue
                        self._changed(each.workload_id)
                        self._hold_if_paused(each)
                        if each.workload_id is None:
                            full = True
                        else:
                            changed.add(each.workload_id)
                except TimeoutError:
                    full = True
                full = full or events.take_overflow() or len(changed) > TARGETED_MAX
                try:
                    if full or loop.time() >= full_due:
                        full_due = loop.time() + self._interval
                        await self.reload()
                    else:
                        await self.reload_workloads(changed)
                except Exception:
                    log.exception("route refresh failed; retrying on the next change")
        finally:
            events.close()


def _routing(event: Event) -> bool:
    """Whether `event` may change the routes (see `ROUTING_EVENTS`, `NEVER_ROUTED`)."""
    if event.kind not in ROUTING_EVENTS:
        return False
    return not (event.kind == "workload.changed" and event.data.get("type") in NEVER_ROUTED)
