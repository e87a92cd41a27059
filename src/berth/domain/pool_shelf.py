"""The warm pools' shelf: which pool tasks are ready, per profile, in this process (pure).

The pool controller (`berth.control.warm_pools`) puts tasks on the shelf once the engine
runs them; a create takes one (`berth.domain.warm_pools.take`) and never gives it back. The
shelf also keeps what sizes the pools: the demand each profile saw in the last minute (a
create that took a task or found none). It is open only while this process keeps the pools
(it holds their lease): elsewhere a create finds nothing and starts its task as usual.

Everything here is in memory and synchronous (one event loop, no awaits), so a take and a
put never interleave; the shelf also keeps the hand-overs of taken tasks running in the
background (`berth.domain.warm_pools.hand_over`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal

PoolKind = Literal["container", "service"]

DEMAND_WINDOW_SECONDS = 60.0
"""A pool holds as many ready tasks as creates asked of it in this long (within its size
and its maximum)."""
TAKEN_GRACE_SECONDS = 60.0
"""A taken task whose workload is not in the database this long after is left over (its
create failed when committing) and is removed."""
REFILL_DELAY_SECONDS = 1.0
"""After a take, a pool that still has ready tasks waits this long before launching the
next: the engine's work for a new task (about half a second of a core) would otherwise
compete with the taken task's first commands."""


@dataclass(frozen=True)
class PoolWant:
    """The task a create would start: what a pool task must match exactly."""

    kind: PoolKind
    image: str
    cpu: float
    memory_mb: int
    port: int | None = None
    mount_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoolProfile:
    """One pool: the task it holds ready (`want`), at least `size` of them, up to
    `max_size` while demand asks for more."""

    name: str
    want: PoolWant
    size: int
    max_size: int


@dataclass(frozen=True)
class PooledTask:
    """A ready pool task, as a create takes it: the engine's task, and the ids its workload
    and first run take."""

    profile: str
    workload_id: str
    run_id: str
    task_id: str


class PoolShelf:
    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._profiles: dict[str, PoolProfile] = {}
        self._by_want: dict[PoolWant, str] = {}
        self._ready: dict[str, deque[PooledTask]] = {}
        self._asked: dict[str, deque[float]] = {}
        self._taken: dict[str, float] = {}
        self._last_take = float("-inf")
        self.is_open = False
        self.changed: Callable[[], None] = lambda: None
        """Called when a task is taken (the controller refills)."""
        self._background: set[asyncio.Task[None]] = set()
        self._first_use: dict[str, asyncio.Event] = {}

    def configure(self, profiles: Sequence[PoolProfile]) -> None:
        self._profiles = {profile.name: profile for profile in profiles}
        self._by_want = {profile.want: profile.name for profile in profiles}
        self._ready = {profile.name: deque() for profile in profiles}
        self._asked = {profile.name: deque() for profile in profiles}

    @property
    def profiles(self) -> list[PoolProfile]:
        return list(self._profiles.values())

    def profile(self, name: str) -> PoolProfile | None:
        return self._profiles.get(name)

    # -- a create's side -------------------------------------------------------------------

    def take(self, want: PoolWant) -> PooledTask | None:
        name = self._by_want.get(want)
        if name is None or not self.is_open:
            return None
        self._asked[name].append(self._now())
        ready = self._ready[name]
        task = ready.popleft() if ready else None
        if task is not None:
            self._taken[task.run_id] = self._now()
            self._last_take = self._now()
        self.changed()
        return task

    async def first_use(self, task_id: str, *, within: float) -> None:
        """Until the taken task's first command ended (`used`), or `within` seconds."""
        ended = self._first_use.setdefault(task_id, asyncio.Event())
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await ended.wait()
        finally:
            self._first_use.pop(task_id, None)

    def used(self, task_id: str) -> None:
        """A command in the task ended (a no-op unless a hand-over waits on it)."""
        ended = self._first_use.get(task_id)
        if ended is not None:
            ended.set()

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a taken task's hand-over without waiting for it (kept until it ends)."""
        task = asyncio.get_running_loop().create_task(work, name="warm-pool hand-over")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self) -> None:
        """Wait for the hand-overs under way (a test's, or a clean stop's)."""
        while self._background:
            await asyncio.wait(set(self._background))

    # -- the controller's side -------------------------------------------------------------

    def open(self) -> None:
        self.is_open = True

    def close(self) -> list[PooledTask]:
        """Stop handing out tasks; the ready ones, no longer on the shelf."""
        self.is_open = False
        ready = [task for queue in self._ready.values() for task in queue]
        for queue in self._ready.values():
            queue.clear()
        return ready

    def put(self, task: PooledTask) -> None:
        self._ready[task.profile].append(task)

    def ready(self, name: str) -> list[PooledTask]:
        return list(self._ready.get(name, ()))

    def discard(self, run_id: str) -> bool:
        """Take a ready task off the shelf (it died); True if it was there."""
        for queue in self._ready.values():
            for task in queue:
                if task.run_id == run_id:
                    queue.remove(task)
                    return True
        return False

    def holds(self, run_id: str) -> bool:
        """Whether the task is on the shelf or was taken lately by a create that may still
        be committing."""
        if run_id in self._taken:
            return self._now() - self._taken[run_id] < TAKEN_GRACE_SECONDS
        return any(task.run_id == run_id for queue in self._ready.values() for task in queue)

    def forget_taken(self) -> None:
        """Drop the record of takes older than the grace (their creates committed or not)."""
        cutoff = self._now() - TAKEN_GRACE_SECONDS
        for run_id in [r for r, at in self._taken.items() if at < cutoff]:
            del self._taken[run_id]

    def refill_wait(self, name: str) -> float:
        """Seconds until the pool may launch its next task: none while it is empty, else
        what is left of `REFILL_DELAY_SECONDS` since the last take."""
        if not self._ready.get(name):
            return 0.0
        return max(0.0, self._last_take + REFILL_DELAY_SECONDS - self._now())

    def target(self, name: str) -> int:
        """How many ready tasks the pool should hold now: its size, or what the last
        minute's creates asked of it, up to its maximum."""
        profile = self._profiles[name]
        asked = self._asked[name]
        cutoff = self._now() - DEMAND_WINDOW_SECONDS
        while asked and asked[0] < cutoff:
            asked.popleft()
        return max(profile.size, min(profile.max_size, len(asked)))
