"""The in-process event bus: domain changes fan out to every subscriber.

Publishing never blocks: each subscriber has its own bounded queue, and a subscriber too slow
to keep up loses its oldest events (it is told through `Subscription.overflowed`) rather than
stalling the publisher. Controllers subscribe to wake up at once; WebSockets subscribe to push
status changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    kind: str
    """e.g. `workload.changed`, `workload.status`, `run.finished`."""
    user_id: str | None = None
    workload_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class Subscription:
    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        self.overflowed = False

    def offer(self, event: Event) -> None:
        if self.queue.full():
            self.overflowed = True
            self.queue.get_nowait()
        self.queue.put_nowait(event)

    async def get(self) -> Event:
        return await self.queue.get()

    def take_waiting(self) -> list[Event]:
        """The events queued now, taken without waiting (none: an empty list)."""
        events = []
        while not self.queue.empty():
            events.append(self.queue.get_nowait())
        return events

    def take_overflow(self) -> bool:
        """Whether events were lost since the last call (`overflowed`, which this resets)."""
        overflowed, self.overflowed = self.overflowed, False
        return overflowed

    def close(self) -> None:
        self._bus.unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def publish(self, event: Event) -> None:
        for sub in list(self._subscribers):
            sub.offer(event)
