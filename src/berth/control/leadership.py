"""Runs each controller only while this replica holds its lease (`berth.domain.leases`).

Every `renew_every` seconds the replica tries to take or renew each controller's lease. A
controller starts once its lease is won and is cancelled as soon as the lease is lost to
another replica, or when renewals have failed (database away) for long enough that the
lease may have lapsed: a replica stops before anyone can take over, so no two replicas run
the same controller at once. With one replica (SQLite) every lease is always held and every
controller runs, as before leases existed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from berth.domain import leases
from berth.domain.context import Domain
from berth.domain.replicas import presence_name

log = logging.getLogger("berth.control")

Work = Callable[[], Coroutine[Any, Any, None]]
"""What a controller does while its lease is held: runs until cancelled."""

SAFETY_MARGIN = 0.2
"""Of a lease's length: a replica whose renewals fail stops its controller this much before
the lease it last renewed can lapse (time to cancel, and for clocks to differ a little)."""


class Leadership:
    """The leased controllers of one replica; `run_forever` keeps their leases."""

    def __init__(
        self,
        domain: Domain,
        *,
        replica_id: str,
        lease_seconds: float,
        renew_every: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`monotonic` is the local clock that bounds how long a lease renewed last surely
        holds (a test passes one it moves)."""
        if renew_every >= lease_seconds * (1 - SAFETY_MARGIN):
            raise ValueError("a lease must be renewed well within its length")
        self.domain = domain
        self._monotonic = monotonic
        self.replica_id = replica_id
        self._lease_seconds = lease_seconds
        self._renew_every = renew_every
        self._work: dict[str, Work] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._valid_until: dict[str, float] = {}
        """Local time until which a lease this replica renewed surely has not lapsed."""
        self._watchdogs: dict[str, asyncio.TimerHandle] = {}

    def add(self, name: str, work: Work) -> None:
        self._work[name] = work

    def holds(self, name: str) -> bool:
        """Whether this replica runs controller `name` now."""
        task = self._running.get(name)
        return task is not None and not task.done()

    async def run_forever(self) -> None:
        while True:
            await self.renew_once()
            await asyncio.sleep(self._renew_every)

    async def renew_once(self) -> None:
        """One round: take or renew every lease at once; start or stop controllers to match.
        The replica's presence lease is renewed with them (it shows the replica alive)."""
        await asyncio.gather(self._renew_presence(), *(self._renew(name) for name in self._work))

    async def _renew_presence(self) -> None:
        with contextlib.suppress(Exception):  # the database is away: the next round retries
            await asyncio.wait_for(
                leases.hold(
                    self.domain,
                    presence_name(self.replica_id),
                    self.replica_id,
                    seconds=self._lease_seconds,
                ),
                self._lease_seconds * SAFETY_MARGIN,
            )

    async def _renew(self, name: str) -> None:
        asked_at = self._monotonic()
        try:
            held = await asyncio.wait_for(
                leases.hold(self.domain, name, self.replica_id, seconds=self._lease_seconds),
                self._lease_seconds * SAFETY_MARGIN,
            )
        except Exception as exc:  # the database is away: keep going while surely held
            if self.holds(name) and self._monotonic() >= self._valid_until.get(name, 0.0):
                log.warning("lease %s not renewed (%s); stopping its controller", name, exc)
                await self._stop(name)
            return
        if not held:
            if self.holds(name):
                log.info("lease %s lost to another replica; stopping its controller", name)
                await self._stop(name)
            return
        surely_held = self._lease_seconds * (1 - SAFETY_MARGIN)
        self._valid_until[name] = asked_at + surely_held
        if not self.holds(name):
            log.info("replica %s runs %s", self.replica_id, name)
            self._running[name] = asyncio.create_task(self._work[name](), name=name)
        # Should no renewal succeed in time (a database that hangs rather than fails), the
        # controller is cancelled when the lease may lapse, whatever the rounds do meanwhile.
        if (old := self._watchdogs.pop(name, None)) is not None:
            old.cancel()
        elapsed = self._monotonic() - asked_at
        self._watchdogs[name] = asyncio.get_running_loop().call_later(
            max(0.0, surely_held - elapsed), self._running[name].cancel
        )

    async def stop(self) -> None:
        """Stop every controller and give up their leases (another replica takes over on
        its next round rather than after the leases lapse)."""
        for name in list(self._running):
            await self._stop(name)
        for name in [*self._work, presence_name(self.replica_id)]:
            with contextlib.suppress(Exception):
                await leases.release(self.domain, name, self.replica_id)

    async def _stop(self, name: str) -> None:
        task = self._running.pop(name, None)
        self._valid_until.pop(name, None)
        if (watchdog := self._watchdogs.pop(name, None)) is not None:
            watchdog.cancel()
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
