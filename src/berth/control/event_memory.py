"""What the engine's event stream said about berth's tasks that the reconciler still needs.

The stream says when a task started and that it died (with its exit code) before an
inspect of the task can: the engine answers an inspect of a task that is exiting only once
it has released the task's network and mounts, tens of milliseconds after the `die` event.
So the reconciler records a start from the `start` event and a clean exit from the `die`
event, and inspects only when the events do not say enough.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from berth.runtime.base import TaskEvent, TaskId

MAX_REMEMBERED = 10_000
"""Start times kept at most; the oldest go first (a task whose destroy event was missed)."""


class TaskEventMemory:
    """Start times and OOM kills seen per task, and deaths held for a run whose engine
    operation is under way (the reconciler handles them once that operation ends)."""

    def __init__(self) -> None:
        self._started: dict[TaskId, datetime] = {}
        self._start_waiters: dict[TaskId, asyncio.Future[datetime]] = {}
        self._oom_killed: set[TaskId] = set()
        self._oom_waiters: dict[TaskId, asyncio.Future[None]] = {}
        self._held_deaths: dict[str, TaskEvent] = {}

    def note(self, event: TaskEvent) -> None:
        """Remember what `event` says about its task's start and OOM kills."""
        if event.action == "start" and event.at is not None:
            waiter = self._start_waiters.pop(event.task_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(event.at)
                return
            if len(self._started) >= MAX_REMEMBERED:
                self._started.pop(next(iter(self._started)))
            self._started[event.task_id] = event.at
        elif event.action == "oom":
            self._oom_killed.add(event.task_id)
            oom_waiter = self._oom_waiters.pop(event.task_id, None)
            if oom_waiter is not None and not oom_waiter.done():
                oom_waiter.set_result(None)
        elif event.action == "destroy":
            self.forget(event.task_id)

    def start_of(self, task_id: TaskId) -> asyncio.Future[datetime]:
        """When the engine says the task started: done at once if its `start` event came,
        else when it comes (the engine sends it before answering the start call, but the
        answer may still arrive first). Cancel it to stop waiting."""
        waiter: asyncio.Future[datetime] = asyncio.get_running_loop().create_future()
        at = self._started.pop(task_id, None)
        if at is not None:
            waiter.set_result(at)
            return waiter
        self._start_waiters[task_id] = waiter
        waiter.add_done_callback(lambda _: self._drop_waiter(task_id, waiter))
        return waiter

    def _drop_waiter(self, task_id: TaskId, waiter: asyncio.Future[datetime]) -> None:
        if self._start_waiters.get(task_id) is waiter:
            del self._start_waiters[task_id]

    async def oom_killed_within(self, task_id: TaskId, seconds: float) -> bool:
        """Whether an OOM kill of the task is seen, now or within `seconds`: the engine may
        report a kill of a process inside the task (not its first one) after its death."""
        if task_id in self._oom_killed:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._oom_waiters[task_id] = waiter
        try:
            await asyncio.wait_for(waiter, seconds)
        except TimeoutError:
            return False
        finally:
            if self._oom_waiters.get(task_id) is waiter:
                del self._oom_waiters[task_id]
        return True

    def exited_cleanly(self, death: TaskEvent) -> bool:
        """True if `death` alone tells the run's result: exit code 0, a time, and no OOM
        kill seen for the task (the engine reports the kill before the death)."""
        return (
            death.exit_code == 0 and death.at is not None and death.task_id not in self._oom_killed
        )

    def hold_death(self, run_id: str, death: TaskEvent) -> None:
        self._held_deaths[run_id] = death

    def take_held_death(self, run_id: str) -> TaskEvent | None:
        return self._held_deaths.pop(run_id, None)

    def forget(self, task_id: TaskId) -> None:
        """The task is finished with: nothing about it is needed any more."""
        self._started.pop(task_id, None)
        self._oom_killed.discard(task_id)
