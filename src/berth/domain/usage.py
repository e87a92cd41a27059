"""Live usage of dev boxes (memory, storage), kept off the API's read path.

Reading a task's memory or its volumes' sizes is a round trip to the engine (a stats call, a
walk of every volume), far slower than the rest of a `GET /compute/containers/{id}`. The
figures are approximate by nature, so reads are served from the last measurement: a figure
older than its time to live is returned as it is while one background measurement replaces
it (one per figure, however many readers ask meanwhile). Only the very first read of a
figure (a container just started) waits for the engine. An engine error keeps the previous
figure; figures nobody asked for in a while are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from berth.runtime.base import Runtime, RuntimeDriverError, TaskId

MEMORY_TTL_SECONDS = 2.0
STORAGE_TTL_SECONDS = 15.0
FORGET_AFTER_SECONDS = 300.0


@dataclass
class _Figure:
    value: Any
    measured_at: float
    read_at: float
    refreshing: asyncio.Task[None] | None = None


@dataclass
class LiveUsage:
    """Last measurements of memory per task and storage per volume selector."""

    memory_ttl: float = MEMORY_TTL_SECONDS
    storage_ttl: float = STORAGE_TTL_SECONDS
    figures: dict[Hashable, _Figure] = field(default_factory=dict)
    changes: int = 0
    """Counts the measurements that changed a figure (see `epoch`)."""

    def epoch(self) -> tuple[int, int]:
        """Changes whenever a view built from these figures may differ from the last one.

        A reader keeping built answers (the API's read cache) keys them with this: it moves
        when a measurement changed a figure, and once per memory time to live, so a kept
        answer still reads the figures often enough to start their background refresh.
        """
        return self.changes, int(time.monotonic() // self.memory_ttl)

    async def memory_bytes(self, runtime: Runtime, task_id: str) -> int | None:
        """The task's memory use; None while it does not run."""
        value: int | None = await self._read(
            ("memory", task_id),
            self.memory_ttl,
            lambda: runtime.memory_usage(TaskId(task_id)),
        )
        return value

    async def storage_bytes(self, runtime: Runtime, selector: dict[str, str]) -> int:
        """Bytes used by all volumes carrying `selector`'s labels."""

        async def measure() -> int:
            return sum((await runtime.volume_usage(selector)).values())

        key = ("storage", tuple(sorted(selector.items())))
        value: int = await self._read(key, self.storage_ttl, measure)
        return value

    async def _read(self, key: Hashable, ttl: float, measure: Callable[[], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        figure = self.figures.get(key)
        if figure is None:
            # The first read waits: a container's first view shows its figures.
            self._forget_unread(now)
            figure = _Figure(value=await measure(), measured_at=now, read_at=now)
            self.figures[key] = figure
            self.changes += 1
            return figure.value
        figure.read_at = now
        if now - figure.measured_at > ttl and figure.refreshing is None:
            figure.refreshing = asyncio.create_task(self._refresh(figure, measure))
        return figure.value

    async def _refresh(self, figure: _Figure, measure: Callable[[], Awaitable[Any]]) -> None:
        try:
            with contextlib.suppress(RuntimeDriverError):
                value = await measure()
                if value != figure.value:
                    figure.value = value
                    self.changes += 1
            figure.measured_at = time.monotonic()
        finally:
            figure.refreshing = None

    def _forget_unread(self, now: float) -> None:
        stale = [k for k, f in self.figures.items() if now - f.read_at > FORGET_AFTER_SECONDS]
        for key in stale:
            del self.figures[key]
