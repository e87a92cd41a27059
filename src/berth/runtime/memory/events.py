"""The in-memory engine's event stream: who watches which labels, and what they are sent.

A real engine's `/events` stream carries every container event to each watcher whose label
filter matches, and ends when the engine goes away. `EventHub` does the same for the tasks of
`MemoryRuntime`: `publish` queues an event for each matching watcher, `end_all` ends every
stream (the engine went down), and `watch` is one watcher's stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping

from berth.runtime.base import RuntimeUnavailable, TaskEvent


def matches(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    """Whether `labels` carry every key of `selector` with its value."""
    return all(labels.get(key) == value for key, value in selector.items())


class EventHub:
    """Watchers of task events, each with its label selector and its queue."""

    def __init__(self) -> None:
        self._watchers: list[tuple[dict[str, str], asyncio.Queue[TaskEvent | None]]] = []

    def publish(self, event: TaskEvent, labels: Mapping[str, str]) -> None:
        """Send `event` (about a task labelled `labels`) to every watcher it matches."""
        for selector, queue in self._watchers:
            if matches(labels, selector):
                queue.put_nowait(event)

    def end_all(self) -> None:
        """End every open stream with `RuntimeUnavailable` (the engine went down)."""
        for _selector, queue in self._watchers:
            queue.put_nowait(None)

    async def watch(self, selector: Mapping[str, str]) -> AsyncGenerator[TaskEvent, None]:
        """Events matching `selector` from now on, until `end_all`."""
        queue: asyncio.Queue[TaskEvent | None] = asyncio.Queue()
        entry = (dict(selector), queue)
        self._watchers.append(entry)
        try:
            while True:
                event = await queue.get()
                if event is None:
                    raise RuntimeUnavailable("the in-memory engine's event stream ended")
                yield event
        finally:
            self._watchers.remove(entry)
