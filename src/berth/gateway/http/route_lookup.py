"""Routes for workloads the gateway's table does not know yet, found on demand.

The table is rebuilt when workloads change (`route_refresh`), a moment after the change: a
request that names a service created just before would otherwise find no route (503
`no_route`) until that rebuild. So a request whose Host names a workload id the table does
not know asks the store about that one workload (one indexed read, and a listing of its
tasks only), and its routes join the table (`RouteTable.add_found`).

Names nobody serves must not turn a flood of requests into a flood of reads:

- only a name of the form of a workload id is looked up;
- concurrent requests for one name share one lookup;
- a name looked up is not looked up again for `RECHECK_SECONDS` (its requests are answered
  from the table meanwhile), unless an event about that workload arrives (`forget`);
- lookups of all names together are limited to `LOOKUPS_PER_SECOND` (burst
  `LOOKUP_BURST`); past that a request for an unknown name is answered `no_route` at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

from berth.domain.context import Domain
from berth.domain.ids import is_workload_id
from berth.gateway.http.route_table import Route, RouteTable, load_workload_routes
from berth.token_buckets import TokenBuckets

log = logging.getLogger("berth.gateway")

RECHECK_SECONDS = 1.0
LOOKUPS_PER_SECOND = 20.0
LOOKUP_BURST = 40
REMEMBERED_NAMES = 4096
"""Names whose last lookup is remembered (then the memory starts over)."""
BUDGET_KEY = "lookups"


class RouteLookup:
    def __init__(
        self,
        domain: Domain,
        table: RouteTable,
        *,
        http_port: int,
        https_port: int | None,
        recheck_seconds: float = RECHECK_SECONDS,
        budget: TokenBuckets | None = None,
    ) -> None:
        self._domain = domain
        self._table = table
        self._http_port = http_port
        self._https_port = https_port
        self._recheck_seconds = recheck_seconds
        self._budget = budget or TokenBuckets(rate=LOOKUPS_PER_SECOND, burst=LOOKUP_BURST)
        self._looking: dict[str, asyncio.Task[None]] = {}
        self._looked_at: dict[str, float] = {}
        """When each name was last looked up (monotonic seconds)."""

    async def find(self, workload_id: str, listen_port: int) -> Route | None:
        """The route for `workload_id` on `listen_port`, asking the store if the table does
        not know the workload (see the module docstring for when it does not ask); None when
        there is none."""
        lookup = self._looking.get(workload_id)
        if lookup is None:
            if not self._may_look_up(workload_id):
                return self._table.routes().get((workload_id, listen_port))
            lookup = asyncio.create_task(self._look_up(workload_id))
            self._looking[workload_id] = lookup
            lookup.add_done_callback(lambda done: self._looked_up(workload_id, done))
        await asyncio.shield(lookup)
        return self._table.routes().get((workload_id, listen_port))

    def forget(self, workload_id: str) -> None:
        """Something about the workload changed: the next request for it may look it up
        again at once (a lookup under way may have read it before the change)."""
        self._looked_at.pop(workload_id, None)
        self._looking.pop(workload_id, None)

    def _may_look_up(self, workload_id: str) -> bool:
        if not is_workload_id(workload_id):
            return False
        looked_at = self._looked_at.get(workload_id)
        if looked_at is not None and time.monotonic() - looked_at < self._recheck_seconds:
            return False
        return self._budget.take(BUDGET_KEY).allowed

    async def _look_up(self, workload_id: str) -> None:
        read = self._table.begin_read()
        try:
            routes = await load_workload_routes(
                self._domain, workload_id, http_port=self._http_port, https_port=self._https_port
            )
        except Exception as exc:
            log.warning("could not look up the routes of %s: %s", workload_id, exc)
            return
        self._table.add_found(workload_id, routes, read=read)

    def _looked_up(self, workload_id: str, lookup: asyncio.Task[None]) -> None:
        if self._looking.get(workload_id) is not lookup:
            return  # forgotten meanwhile: what it read may predate the change
        del self._looking[workload_id]
        if len(self._looked_at) >= REMEMBERED_NAMES:
            self._looked_at.clear()
        self._looked_at[workload_id] = time.monotonic()
