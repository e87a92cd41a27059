"""Activity: what keeps a workload from counting as idle, told to every replica.

Two controllers act on idleness, on one replica each: the scale-to-zero idle scaler stops a
service nobody requested for its `idle_timeout_seconds`, and the same scaler pauses a dev box
nobody used for `BERTH_DEV_BOX_IDLE_PAUSE_SECONDS`. Use happens on any replica: a request
through its HTTP gateway, an SSH login through its SSH gateway, a terminal on its API. So
every replica announces use as `ACTIVITY` events on the bus (which cross replicas), and the
scaler follows them.

A request is a moment; a login or a terminal lasts. What lasts is held in `OpenUses` for as
long as it is open, and `announce_open_uses` announces every held workload again each
`ANNOUNCE_SECONDS`, so a box with an SSH session open for hours never counts as idle.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from berth.domain.events import Event

if TYPE_CHECKING:
    from berth.domain.context import Domain

log = logging.getLogger("berth.activity")

ACTIVITY = "workload.activity"
"""The event telling every replica's idle scaler that a workload was used, and when."""
ANNOUNCE_SECONDS = 5.0
"""A replica announces one workload's use at most this often (an open use: this often), so
the idle scaler sees use on any replica at most this late."""


def announce(domain: Domain, workload_id: str, at: datetime | None = None) -> None:
    """Tell every replica `workload_id` was used at `at` (now by default)."""
    when = at or domain.clock.now()
    domain.bus.publish(Event(ACTIVITY, workload_id=workload_id, data={"at": when.isoformat()}))


def heard_at(event: Event) -> datetime | None:
    """When an `ACTIVITY` event says its workload was used (None for other events)."""
    if event.kind != ACTIVITY or event.workload_id is None:
        return None
    try:
        return datetime.fromisoformat(str(event.data.get("at")))
    except ValueError:
        return None


class OpenUses:
    """The workloads this process holds open now (an SSH login, a terminal), counted: two
    logins into one box hold it until both end."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def add(self, workload_id: str) -> None:
        self._counts[workload_id] += 1

    def discard(self, workload_id: str) -> None:
        if self._counts[workload_id] <= 1:
            del self._counts[workload_id]
        else:
            self._counts[workload_id] -= 1

    @contextmanager
    def hold(self, workload_id: str) -> Iterator[None]:
        self.add(workload_id)
        try:
            yield
        finally:
            self.discard(workload_id)

    def held(self) -> list[str]:
        return [workload_id for workload_id, count in self._counts.items() if count > 0]


async def announce_open_uses(domain: Domain) -> None:
    """Forever (on every replica): announce each workload held open, every
    `ANNOUNCE_SECONDS`; a use that just began is announced by its holder at once."""
    while True:
        await asyncio.sleep(ANNOUNCE_SECONDS)
        for workload_id in domain.uses.held():
            announce(domain, workload_id)
