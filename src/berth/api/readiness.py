"""The readiness check behind `GET /readyz`: does this replica's database answer?

The route needs no credentials and is not rate limited (load balancers poll it), so a
caller flooding it must not turn each request into a database round trip competing with
real traffic: concurrent checks share one ping, and its answer stands for `REUSE_SECONDS`.
"""

from __future__ import annotations

import asyncio

from berth.domain.context import Domain
from berth.domain.errors import StoreUnavailable

WITHIN_SECONDS = 2.0
"""How long a check waits for the database: under a load balancer's usual health check
timeout (5 s; the Kubernetes manifest's probe allows 3 s), so a hung database is answered
503 rather than left to the balancer's timeout."""
REUSE_SECONDS = 1.0
"""How long an answer stands: a balancer sees a change within its next poll after it."""


class Readiness:
    """One replica's readiness: the latest ping's answer and the ping under way, if any."""

    def __init__(self, domain: Domain) -> None:
        self._domain = domain
        self._answered_at = float("-inf")
        self._refusal: str | None = None
        """The last ping's `StoreUnavailable` message; None when it succeeded."""
        self._ping: asyncio.Task[None] | None = None

    async def check(self) -> None:
        """Return if the database answered a ping at most `REUSE_SECONDS` ago or answers
        one now; raise `StoreUnavailable` if not."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._answered_at >= REUSE_SECONDS:
            if self._ping is None:
                self._ping = asyncio.create_task(self._pinged(), name="readiness-ping")
            # Shielded: a caller giving up does not cancel the ping the others wait on.
            await asyncio.shield(self._ping)
        if self._refusal is not None:
            raise StoreUnavailable(self._refusal)

    async def _pinged(self) -> None:
        """Ping once and keep the answer; an unexpected error reaches the waiting callers
        and is not kept, so the next call pings again."""
        try:
            try:
                await self._domain.store.ping(within=WITHIN_SECONDS)
                self._refusal = None
            except StoreUnavailable as refused:
                self._refusal = refused.message
            self._answered_at = asyncio.get_running_loop().time()
        finally:
            self._ping = None
