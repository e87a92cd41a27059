"""Runs load clients concurrently for a fixed time and stops by itself.

Every client loops on `step()` until the deadline; the first `warmup` seconds are not
measured (see `LoadRecord.set_window`). A client's own bug (an exception out of `step`) is
recorded as a failure and the client goes on, so one surprise does not hide the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Protocol

from berth.testing.load.record import LoadRecord


class Steps(Protocol):
    async def step(self) -> None: ...


async def drive(
    clients: Sequence[Steps], *, record: LoadRecord, seconds: float, warmup: float = 0.0
) -> tuple[float, float]:
    """Run the clients for `warmup + seconds`; returns the measured window (monotonic start,
    end). Requests in flight at the deadline finish (each has the HTTP client's timeout)."""
    start = time.monotonic()
    record.set_window(start + warmup, seconds)
    deadline = start + warmup + seconds

    async def loop(client: Steps) -> None:
        while time.monotonic() < deadline:
            began = time.monotonic()
            try:
                await client.step()
            except Exception as exc:  # a harness bug must not stop the others
                record.no_answer("client step", started=began, error=exc)

    await asyncio.gather(*(loop(client) for client in clients))
    return record.window_start, record.window_end
