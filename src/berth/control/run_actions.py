"""The reconciler's engine operations on one run, and how each records what the engine said.

Each method is the body of one operation (see `operations`): the reconciler decides which
one a run needs and starts it; the method talks to the engine outside any transaction and
then records the outcome through the domain (`lifecycle`), whose guarded writes make a
repeated or stale observation change nothing. A method that returns a bool says whether it
left its run settled (running as wanted: no pass needed).

A launch records its run as running as soon as the engine started the task, with the start
time of the engine's `start` event (or of an inspect, whichever answers first); a task that
exits 0 is recorded from its `die` event, any other is inspected (see `event_memory`). A
finished task's result is written, then its output archived, then the task removed, so a crash
between any two steps loses nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from berth.control.event_memory import TaskEventMemory
from berth.control.tasks import build_task_spec, result_of
from berth.domain import active_runs, labels, lifecycle
from berth.domain.context import Domain
from berth.domain.events import Event
from berth.domain.records import ACTIVE_RUN_STATUSES, Run, Workload
from berth.runtime.base import (
    ImageNotFound,
    InvalidTaskSpec,
    Runtime,
    RuntimeDriverError,
    RuntimeUnavailable,
    TaskEvent,
    TaskId,
    TaskNotFound,
    TaskSpec,
    TaskState,
    TaskStatus,
)

log = logging.getLogger("berth.reconciler")

KILLED_EXIT_CODE = 137
"""128 + SIGKILL: what an OOM-killed task exits with."""
LATE_OOM_SECONDS = 0.5
"""How long a killed task's result waits for the engine's word of an OOM kill."""


class RunActions:
    def __init__(
        self,
        domain: Domain,
        runtime: Runtime,
        events: TaskEventMemory,
        *,
        instance_id: str,
        stop_grace: float,
        backoff_max: float,
        log_max_bytes: int,
        now: Callable[[], datetime],
    ) -> None:
        self._domain = domain
        self._runtime = runtime
        self._events = events
        self._instance_id = instance_id
        self._stop_grace = stop_grace
        self._backoff_max = backoff_max
        self._log_max_bytes = log_max_bytes
        self._now = now

    async def start_promoted(self, run_id: str) -> bool:
        """Start a promoted standby run's created task, if the run still wants it."""
        run = await active_runs.get_run(self._domain, run_id)
        if run is None or run.status != "pending" or run.standby or run.stop_requested:
            return False
        if not run.task_id:
            return False
        return await self.start_created(run, TaskId(run.task_id))

    async def finish_exited(self, run_id: str, death: TaskEvent) -> None:
        """The engine said a task died: record its run's result now if it was running,
        from the event alone when it says everything (a clean exit), else inspecting."""
        run = await active_runs.get_run(self._domain, run_id)
        if run is None or run.status != "running" or run.task_id != death.task_id:
            return  # not this path's business: the pass that follows sees to it
        if self._events.exited_cleanly(death) and death.at is not None:
            await self._finish_with(run, death.task_id, lifecycle.RunResult(0, death.at))
            return
        task = await self._runtime.inspect(death.task_id)
        if task is None or task.status is not TaskStatus.EXITED:
            return
        # Killed: by the OOM killer, if the engine says so in a moment (a process other than
        # the task's first one may be its victim, and its report may come after the death).
        if (
            task.exit_code == KILLED_EXIT_CODE
            and not task.oom_killed
            and await self._events.oom_killed_within(task.task_id, LATE_OOM_SECONDS)
        ):
            task = dataclasses.replace(task, oom_killed=True)
        await self.finish(run, task)

    async def _spec(
        self, run: Run, workload: Workload, env: dict[str, str] | None = None
    ) -> TaskSpec:
        """The run's task spec; `env` is read (secrets decrypted) unless already known."""
        if env is None:
            env = await active_runs.task_environment(self._domain, workload)
        return build_task_spec(
            instance_id=self._instance_id,
            workload=workload,
            run=run,
            env=env,
            log_max_bytes=self._log_max_bytes,
        )

    async def launch(self, run: Run, workload: Workload, env: dict[str, str] | None = None) -> bool:
        try:
            task = await self._runtime.launch(await self._spec(run, workload, env), details=False)
        except (ImageNotFound, InvalidTaskSpec) as exc:
            await self.record(run, lifecycle.RunResult(None, self._now(), error=str(exc)))
            return False
        return await self.adopt(run, task)

    async def prepare_standby(self, run: Run, workload: Workload) -> None:
        """Create a standby run's task, not starting it. If it cannot be created, the run
        ends failed (a crash for back-off purposes, so a broken image is not retried in a
        loop) and the planner makes another later."""
        try:
            task = await self._runtime.create(await self._spec(run, workload))
        except (ImageNotFound, InvalidTaskSpec) as exc:
            await self.record(run, lifecycle.RunResult(None, self._now(), error=str(exc)))
            return
        await lifecycle.mark_standby_prepared(self._domain, run.id, task_id=task.task_id)

    async def start_created(self, run: Run, task_id: TaskId) -> bool:
        try:
            started = await self._runtime.start(task_id, details=False)
        except InvalidTaskSpec as exc:
            await self.record(run, lifecycle.RunResult(None, self._now(), error=str(exc)))
            return False
        except TaskNotFound:
            error = "the task's container disappeared from the engine before it started"
            await self.record(run, lifecycle.RunResult(None, self._now(), error=error))
            return False
        # Routable now (the gateway may be holding a request for it), before it is recorded.
        self._domain.bus.publish(
            Event("task.started", user_id=run.user_id, workload_id=run.workload_id)
        )
        return await self.adopt(run, started)

    async def adopt(self, run: Run, task: TaskState) -> bool:
        """Record the run as running on `task`, started when the engine says: the task's
        state, else its `start` event, else an inspect. A task known to have ended (one that
        finished while berth was down) is finished at once; any other's end comes as a
        `die` event (held until this operation ends if it comes meanwhile). True if the run
        was recorded running and nothing waits on its start (settled)."""
        started_at = task.started_at
        if started_at is None:
            started_at, task = await self._start_time(task)
        started = await lifecycle.mark_run_started(
            self._domain, run.id, task_id=task.task_id, started_at=started_at or self._now()
        )
        if not started and not await active_runs.run_is_active(self._domain, run.id):
            return False  # finished meanwhile by another operation
        if task.status is TaskStatus.EXITED:
            await self.finish(run, task)
            return False
        # Settled only if nothing waits on this start (a roll's older runs, a stop asked
        # for meanwhile): otherwise the operation's end asks for a pass.
        return started and not await active_runs.leaves_work_for_a_pass(self._domain, run)

    async def _start_time(self, task: TaskState) -> tuple[datetime | None, TaskState]:
        """When a task the engine runs (or ran) started: from its `start` event or an
        inspect, whichever answers first (an inspect of a task that is exiting waits until
        the engine cleaned up after it; the event does not). The inspect's state, if it won."""
        inspecting = asyncio.ensure_future(self._runtime.inspect(task.task_id))
        event = self._events.start_of(task.task_id)
        either: list[asyncio.Future[Any]] = [inspecting, event]
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if inspecting.done():
                state = inspecting.result()
                return (state.started_at, state) if state is not None else (None, task)
            return event.result(), task
        finally:
            event.cancel()
            inspecting.cancel()

    async def stop(self, task: TaskState) -> None:
        await self._runtime.stop(task.task_id, grace_seconds=self._stop_grace)

    async def discard(self, run: Run, task: TaskState) -> None:
        """A task that never started for a run no longer wanted: remove it, record the run."""
        await self._runtime.remove(task.task_id)
        await self.record(run, lifecycle.RunResult(None, self._now()))

    async def finish(self, run: Run, task: TaskState) -> None:
        await self._finish_with(
            run, task.task_id, result_of(task, logs_archived=False, now=self._now())
        )

    async def _finish_with(self, run: Run, task_id: TaskId, result: lifecycle.RunResult) -> None:
        """Write the result, archive the output, then remove the task: a crash between any
        two steps loses nothing (a finished run whose output is not archived yet keeps its
        task until a later pass archives it, see `remove_leftover`)."""
        await lifecycle.record_run_result(
            self._domain, run.id, result, backoff_max=self._backoff_max
        )
        await self._archive(run.id, task_id)
        await lifecycle.mark_logs_archived(self._domain, run.id)
        await self._runtime.remove(task_id)
        self._events.forget(task_id)

    async def record(self, run: Run, result: lifecycle.RunResult) -> None:
        await lifecycle.record_run_result(
            self._domain, run.id, result, backoff_max=self._backoff_max
        )

    async def remove_leftover(self, task: TaskState, run_id: str) -> None:
        """A task no active run owns: keep its output if its run still wants it, remove it."""
        run = await active_runs.get_run(self._domain, run_id)
        if run is not None and run.status in ACTIVE_RUN_STATUSES:
            return  # launched after this pass read the runs: not a leftover
        if run is not None and not run.logs_archived:
            await self._archive(run.id, task.task_id)
            await lifecycle.mark_logs_archived(self._domain, run.id)
        await self._runtime.remove(task.task_id)

    async def _archive(self, run_id: str, task_id: TaskId) -> None:
        try:
            lines = [line async for line in self._runtime.logs(task_id, follow=False)]
        except RuntimeDriverError as exc:
            if isinstance(exc, RuntimeUnavailable):
                raise
            lines = []
        if not lines and self._domain.logs.exists(run_id):
            return  # the task is gone; what was archived before stays
        await asyncio.to_thread(self._domain.logs.write, run_id, lines)

    async def remove_volumes(self, container_id: str) -> None:
        try:
            await self._runtime.remove_volumes(
                labels.workload_selector(self._instance_id, container_id)
            )
        except RuntimeDriverError as exc:
            log.warning("could not remove the volumes of %s: %s", container_id, exc)

    async def remove_unused_networks(self, user_id: str) -> None:
        selector = {**labels.instance_selector(self._instance_id), labels.USER: user_id}
        try:
            await self._runtime.remove_networks(selector)
        except RuntimeDriverError as exc:
            log.warning("could not remove the network of %s: %s", user_id, exc)
