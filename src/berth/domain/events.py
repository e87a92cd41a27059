"""The in-process event bus: domain changes fan out to every subscriber.

Publishing never blocks: each subscriber has its own bounded queue, and a subscriber too slow
to keep up loses its oldest events (it is told through `Subscription.overflowed`) rather than
stalling the publisher. Controllers subscribe to wake up at once; WebSockets subscribe to push
status changes.

Across replicas (several berth processes on one PostgreSQL database) the bus is bridged
(`bridge`): each event published here is also sent to the other replicas, tagged with this
replica's origin, and events arriving from them (`receive`) are delivered to the local
subscribers as if published here; a replica's own events, coming back, are dropped, since
they were delivered when published. When the bridge may have missed events (its connection
was lost), `resync` tells every subscriber so and wakes the controllers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger("berth.events")


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
        self.origin = secrets.token_hex(8)
        """This bus's name on the bridge (its replica's own events come back under it)."""
        self._send: Callable[[str], None] | None = None

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def publish(self, event: Event) -> None:
        self._deliver(event)
        if self._send is not None:
            self._send(json.dumps({"origin": self.origin, "event": asdict(event)}))

    def bridge(self, send: Callable[[str], None]) -> None:
        """Send every event published from now on to the other replicas too, as text
        (`send` must not block; the receiving side calls `receive`)."""
        self._send = send

    def receive(self, message: str) -> None:
        """An event from the bridge: delivered here unless this bus sent it."""
        try:
            decoded = json.loads(message)
            if decoded["origin"] == self.origin:
                return
            event = Event(**decoded["event"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed event from another replica: %.200s", message)
            return
        self._deliver(event)

    def resync(self) -> None:
        """Events from other replicas may have been missed: every subscriber is told (as if
        its queue had overflowed) and the controllers are woken for a full pass."""
        for sub in list(self._subscribers):
            sub.overflowed = True
        self._deliver(Event("workload.changed"))

    def _deliver(self, event: Event) -> None:
        for sub in list(self._subscribers):
            sub.offer(event)
