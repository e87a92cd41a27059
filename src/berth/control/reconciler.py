"""The reconciler: converges the engine to the desired state, one idempotent pass at a time.

A pass (1) lets the domain create and stop runs so services match their replicas, (2) lists
berth's tasks on the engine, (3) acts on each active run: launch it, adopt a task launched
before a crash, stop it, or archive its output and record its result once its task ended,
(4) removes tasks no active run owns, and (5) refreshes every workload's status.

Engine calls happen outside transactions, one operation per run at a time (tracked in
`operations`), concurrently across runs. A pass runs on every change (domain events, engine
events) and at least every `interval` seconds; killing berth at any instant leaves state that
the next pass converges.

Two targeted paths act before a pass would, so starting work does not wait on one: a changed
workload's runs are planned and launched at once (`workload_changed`), and a task's exit is
recorded from the engine's `die` event (`engine_event`). Each is an operation like a pass's,
so a pass that finds it under way leaves its run alone. An operation that ends with its run
settled (a launch that left its run running) asks for nothing more; any other asks for a pass
when it ends, which catches up anything it left. An engine event about a run whose operation
is under way wakes nothing: that operation's end handles it (a `die` is held for it).

A launch records its run as running as soon as the engine started the task, with the start
time of the engine's `start` event (or of an inspect, whichever answers first), and a task
that exits 0 is recorded from its `die` event; otherwise the task is inspected (see
`event_memory`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select

from berth.control.event_memory import TaskEventMemory
from berth.control.operations import Operation, Operations
from berth.control.tasks import build_task_spec, result_of
from berth.domain import labels, lifecycle
from berth.domain.context import Domain
from berth.domain.events import Event
from berth.domain.secrets import decrypted_environment
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
from berth.store.models import ACTIVE_RUN_STATUSES, Run, Workload

log = logging.getLogger("berth.reconciler")

FAILED_PASS_RETRY = 1.0
"""Seconds before a pass that failed (e.g. on a database error) is tried again."""
ENGINE_DOWN_RETRY = 2.0
"""Seconds between passes while the engine cannot be reached, whatever the interval: the
engine's return is noticed this fast even when its event stream has not reconnected yet."""
MIN_WAIT = 0.05
UNCHANGING_ACTIONS = frozenset(
    {"attach", "detach", "resize", "top", "export", "commit", "copy", "archive-path"}
)
"""Engine event actions that say nothing about a task's state (nor do `exec_*` ones)."""
DEATH_FOLLOWS = frozenset({"kill", "stop", "oom"})
KILLED_EXIT_CODE = 137
"""128 + SIGKILL: what an OOM-killed task exits with."""
LATE_OOM_SECONDS = 0.5
"""How long a killed task's result waits for the engine's word of an OOM kill."""
"""Actions whose state change, if any, a `die` event reports."""
PLANNED_TYPES = frozenset({"service", "container"})
"""Workload types whose runs the planner creates; a change to a job or schedule (a run
made, or a delete) leaves nothing to plan that cannot wait for a pass."""
WORKLOAD_OPERATION = "workload:"
"""Prefix of the operation key of a changed workload's planning (`workload_changed`)."""


class Reconciler:
    def __init__(
        self,
        domain: Domain,
        runtime: Runtime,
        *,
        instance_id: str,
        interval: float,
        stop_grace: float,
        backoff_max: float,
        log_max_bytes: int,
    ) -> None:
        self._domain = domain
        self._runtime = runtime
        self._instance_id = instance_id
        self._interval = interval
        self._stop_grace = stop_grace
        self._backoff_max = backoff_max
        self._log_max_bytes = log_max_bytes
        self._wake = asyncio.Event()
        self._pass_lock = asyncio.Lock()
        self._plan_lock = asyncio.Lock()
        """Serializes run planning: a pass's and a changed workload's."""
        self._operations = Operations(ended=self._operation_ended, engine_down=self._engine_down)
        self._events = TaskEventMemory()
        self.engine_error: str | None = None
        """Why the engine could not be reached in the last pass, or None when it could."""
        self._backoff_due: datetime | None = None
        """When the earliest crash back-off seen in the last pass ends (a replacement is due)."""

    def kick(self) -> None:
        """Ask for a pass as soon as possible."""
        self._wake.set()

    def _now(self) -> datetime:
        return self._domain.clock.now()

    async def settle(self) -> None:
        """Wait until no engine operation a pass started is under way (tests drive passes
        one at a time: a pass, then `settle`, then what it did is in the store)."""
        await self._operations.settle()

    def workload_changed(self, workload_id: str | None) -> None:
        """A workload's desired state changed (created, run now, scaled, deleted...): plan
        its runs and launch the new ones at once, then ask for a pass for the rest. Without
        a workload id, only the pass."""
        key = WORKLOAD_OPERATION + (workload_id or "")
        if workload_id is None or key in self._operations:
            self.kick()  # the planning under way may have read the workload before this change
            return
        self._start(key, self._launch_planned(workload_id))

    def engine_event(self, event: TaskEvent) -> None:
        """React to one engine event about berth's tasks: a task that died has its run's
        result recorded at once (once the operation under way on its run ended, if one
        is); anything else asks for a pass, unless an operation on the task's run is under
        way (its end asks for one) or a `die` will follow."""
        if event.action in UNCHANGING_ACTIONS or event.action.startswith("exec_"):
            return
        self._events.note(event)
        run_id = event.labels.get(labels.RUN, "")
        if run_id and event.action == "die":
            if run_id in self._operations:
                self._events.hold_death(run_id, event)
            else:
                self._start(run_id, self._finish_exited(run_id, event))
            return
        if (run_id and run_id in self._operations) or event.action in DEATH_FOLLOWS:
            return
        self.kick()

    def start_now(self, run_id: str) -> None:
        """Start a promoted standby run's created task at once (a request waits on it),
        without waiting for a pass; a pass that finds it under way leaves it alone."""
        self._start(run_id, self._start_promoted(run_id))

    async def _start_promoted(self, run_id: str) -> bool:
        async with self._domain.store.reading() as session:
            run = await session.get(Run, run_id)
        if run is None or run.status != "pending" or run.standby or run.stop_requested:
            return False
        if not run.task_id:
            return False
        return await self._start_created(run, TaskId(run.task_id))

    async def run_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.reconcile_once()
                wait = self._next_wait()
            except Exception:
                log.exception("reconcile pass failed; retrying in %.0fs", FAILED_PASS_RETRY)
                wait = FAILED_PASS_RETRY
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _next_wait(self) -> float:
        """Seconds until the next pass unless something kicks: the interval, shorter while
        the engine is away, and no later than the end of a crash back-off (nothing else
        would wake the pass that starts the replacement)."""
        wait = self._interval
        if self.engine_error is not None:
            wait = min(wait, ENGINE_DOWN_RETRY)
        if self._backoff_due is not None:
            wait = min(wait, (self._backoff_due - self._now()).total_seconds())
        return max(wait, MIN_WAIT)

    async def cancel_inflight(self) -> None:
        """Abandon engine operations under way (at shutdown); the next start redoes them."""
        await self._operations.cancel_all()

    async def reconcile_once(self) -> None:
        async with self._pass_lock:
            now = self._now()
            async with self._plan_lock:
                await lifecycle.converge_desired_runs(self._domain, now)
            # Runs are read before tasks are listed: a task missing from the list then really
            # is gone, since a run becomes `running` only after its task exists. Runs with an
            # engine operation under way now, or started while this pass runs, are left to
            # it: what this pass reads of them may be stale by the time the list comes back.
            with self._operations.noting() as busy:
                await self._observe_and_act(now, busy)

    async def _observe_and_act(self, now: datetime, busy: set[str]) -> None:
        """The rest of a pass, from reading the runs on (see `reconcile_once`)."""
        async with self._domain.store.reading() as session:
            active = list(
                await session.scalars(select(Run).where(Run.status.in_(ACTIVE_RUN_STATUSES)))
            )
            workloads = {w.id: w for w in await session.scalars(select(Workload))}
        for run in active:
            # A promoted standby's task is known to exist, created: start it now, before
            # the engine is listed (a wake waits on this).
            if (
                run.status == "pending"
                and run.task_id
                and not run.standby
                and not run.stop_requested
                and run.id not in busy
                and run.workload_id in workloads
            ):
                self._start(run.id, self._start_created(run, TaskId(run.task_id)))
        self._backoff_due = min(
            (
                w.backoff_until
                for w in workloads.values()
                if w.backoff_until is not None and w.backoff_until > now
            ),
            default=None,
        )
        try:
            tasks = await self._runtime.list_tasks(labels.instance_selector(self._instance_id))
        except RuntimeUnavailable as exc:
            self._engine_down(exc)
            await lifecycle.refresh_statuses(self._domain, now)
            return
        self.engine_error = None
        by_run = {task.labels.get(labels.RUN, ""): task for task in tasks}
        for run in active:
            if run.id not in busy:
                self._act_on_run(run, workloads.get(run.workload_id), by_run.get(run.id))
        active_ids = {run.id for run in active}
        for run_id, task in by_run.items():
            if run_id not in active_ids and run_id not in busy:
                self._start(run_id or task.task_id, self._remove_leftover(task, run_id))
        # A workload goes only once none of its tasks is left on the engine, so its
        # volumes and network are no longer in use when they are removed.
        on_engine = {task.labels.get(labels.WORKLOAD, "") for task in tasks}
        purged = await lifecycle.purge_deleted_workloads(self._domain, keep=on_engine)
        for run_id in purged.run_ids:
            self._domain.logs.delete(run_id)
        for container_id in purged.container_ids:
            await self._remove_volumes(container_id)
        for user_id in purged.idle_user_ids:
            await self._remove_unused_networks(user_id)
        await lifecycle.refresh_statuses(self._domain, self._now())

    def _act_on_run(self, run: Run, workload: Workload | None, task: TaskState | None) -> None:
        if run.id in self._operations:
            return
        waiting = task is None or task.status is TaskStatus.CREATED
        if run.standby and not run.stop_requested and waiting:
            # A sleeping service's next task: created ahead, started only by a wake.
            if task is None and workload is not None:
                self._start(run.id, self._prepare_standby(run, workload))
            return
        if task is not None and task.status is TaskStatus.CREATED:
            # Created but not started: a promoted standby, or berth stopped between create
            # and start. Starting it is all that is left; a run no longer wanted just
            # loses its container.
            if workload is not None and not run.stop_requested:
                self._start(run.id, self._start_created(run, task.task_id))
            else:
                self._start(run.id, self._discard(run, task))
            return
        if run.status == "pending":
            if task is not None:
                self._start(run.id, self._adopt(run, task))
            elif run.stop_requested or workload is None:
                self._start(run.id, self._record(run, lifecycle.RunResult(None, self._now())))
            else:
                self._start(run.id, self._launch(run, workload))
            return
        if task is None:
            result = lifecycle.RunResult(
                None, self._now(), error="the task's container disappeared from the engine"
            )
            self._start(run.id, self._record(run, result))
        elif task.status == TaskStatus.EXITED:
            self._start(run.id, self._finish(run, task))
        elif run.stop_requested:
            self._start(run.id, self._stop(task))

    def _start(self, key: str, work: Operation) -> None:
        self._operations.start(key, work)

    def _operation_ended(self, key: str, settled: bool) -> None:
        """After an operation: handle a `die` held for its run, and ask for a pass unless
        the operation settled its run."""
        death = self._events.take_held_death(key)
        if death is not None:
            self._start(key, self._finish_exited(key, death))
        if not settled:
            self.kick()

    async def _launch_planned(self, workload_id: str) -> bool:
        """Plan one changed workload's runs (a service's or container's: a job's or
        schedule's are made by the change itself) and launch its pending ones, as a pass
        would (without listing the engine: a launch finds a task made before by its name),
        then wait for those launches. True (no pass needed) if it launched something, each
        launch left its run running, and nothing else of the workload waits on a pass."""
        async with self._domain.store.reading() as session:
            kind = await session.scalar(select(Workload.type).where(Workload.id == workload_id))
        if kind in PLANNED_TYPES:
            async with self._plan_lock:
                await lifecycle.converge_desired_runs(
                    self._domain, self._now(), workload_id=workload_id
                )
        with self._operations.noting() as busy:
            async with self._domain.store.reading() as session:
                workload = await session.get(Workload, workload_id)
                if workload is None or workload.deleted_at is not None:
                    return False
                active = [
                    run
                    for run in await session.scalars(
                        select(Run).where(
                            Run.workload_id == workload_id, Run.status.in_(ACTIVE_RUN_STATUSES)
                        )
                    )
                    if run.id not in busy
                ]
                env = await decrypted_environment(self._domain, session, workload)
        # A pass prepares standbys and carries out stops.
        for_a_pass = any(run.standby or run.stop_requested for run in active)
        launches: list[asyncio.Task[bool]] = []
        for run in active:
            if run.status != "pending" or run.standby or run.stop_requested:
                continue
            if run.task_id:
                launch = self._operations.start(
                    run.id, self._start_created(run, TaskId(run.task_id))
                )
            else:
                launch = self._operations.start(run.id, self._launch(run, workload, env))
            if launch is not None:
                launches.append(launch)
        await lifecycle.refresh_statuses(self._domain, self._now(), workload_id=workload_id)
        if not launches:
            return False
        await asyncio.wait(launches)
        return not for_a_pass and all(not t.cancelled() and t.result() for t in launches)

    async def _finish_exited(self, run_id: str, death: TaskEvent) -> None:
        """The engine said a task died: record its run's result now if it was running,
        from the event alone when it says everything (a clean exit), else inspecting."""
        async with self._domain.store.reading() as session:
            run = await session.get(Run, run_id)
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
        await self._finish(run, task)

    async def _spec(
        self, run: Run, workload: Workload, env: dict[str, str] | None = None
    ) -> TaskSpec:
        """The run's task spec; `env` is read (secrets decrypted) unless already known."""
        if env is None:
            async with self._domain.store.reading() as session:
                env = await decrypted_environment(self._domain, session, workload)
        return build_task_spec(
            instance_id=self._instance_id,
            workload=workload,
            run=run,
            env=env,
            log_max_bytes=self._log_max_bytes,
        )

    async def _launch(
        self, run: Run, workload: Workload, env: dict[str, str] | None = None
    ) -> bool:
        try:
            task = await self._runtime.launch(await self._spec(run, workload, env), details=False)
        except (ImageNotFound, InvalidTaskSpec) as exc:
            await self._record(run, lifecycle.RunResult(None, self._now(), error=str(exc)))
            return False
        return await self._adopt(run, task)

    async def _prepare_standby(self, run: Run, workload: Workload) -> None:
        """Create a standby run's task, not starting it. If it cannot be created, the run
        ends failed (a crash for back-off purposes, so a broken image is not retried in a
        loop) and the planner makes another later."""
        try:
            task = await self._runtime.create(await self._spec(run, workload))
        except (ImageNotFound, InvalidTaskSpec) as exc:
            await self._record(run, lifecycle.RunResult(None, self._now(), error=str(exc)))
            return
        await lifecycle.mark_standby_prepared(self._domain, run.id, task_id=task.task_id)

    async def _start_created(self, run: Run, task_id: TaskId) -> bool:
        try:
            started = await self._runtime.start(task_id, details=False)
        except InvalidTaskSpec as exc:
            await self._record(run, lifecycle.RunResult(None, self._now(), error=str(exc)))
            return False
        except TaskNotFound:
            error = "the task's container disappeared from the engine before it started"
            await self._record(run, lifecycle.RunResult(None, self._now(), error=error))
            return False
        # Routable now (the gateway may be holding a request for it), before it is recorded.
        self._domain.bus.publish(
            Event("task.started", user_id=run.user_id, workload_id=run.workload_id)
        )
        return await self._adopt(run, started)

    async def _adopt(self, run: Run, task: TaskState) -> bool:
        """Record the run as running on `task`, started when the engine says: the task's
        state, else its `start` event, else an inspect. A task known to have ended (one that
        finished while berth was down) is finished at once; any other's end comes as a
        `die` event (held until this operation ends if it comes meanwhile). True if the run
        was recorded running (settled)."""
        started_at = task.started_at
        if started_at is None:
            started_at, task = await self._start_time(task)
        started = await lifecycle.mark_run_started(
            self._domain, run.id, task_id=task.task_id, started_at=started_at or self._now()
        )
        if not started and not await self._still_active(run.id):
            return False  # finished meanwhile by another operation
        if task.status is TaskStatus.EXITED:
            await self._finish(run, task)
            return False
        return started

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

    async def _stop(self, task: TaskState) -> None:
        await self._runtime.stop(task.task_id, grace_seconds=self._stop_grace)

    async def _discard(self, run: Run, task: TaskState) -> None:
        """A task that never started for a run no longer wanted: remove it, record the run."""
        await self._runtime.remove(task.task_id)
        await self._record(run, lifecycle.RunResult(None, self._now()))

    async def _still_active(self, run_id: str) -> bool:
        async with self._domain.store.reading() as session:
            fresh = await session.get(Run, run_id)
        return fresh is not None and fresh.status in ACTIVE_RUN_STATUSES

    async def _finish(self, run: Run, task: TaskState) -> None:
        await self._finish_with(
            run, task.task_id, result_of(task, logs_archived=False, now=self._now())
        )

    async def _finish_with(self, run: Run, task_id: TaskId, result: lifecycle.RunResult) -> None:
        """Write the result, archive the output, then remove the task: a crash between any
        two steps loses nothing (a finished run whose output is not archived yet keeps its
        task until a later pass archives it, see `_remove_leftover`)."""
        await lifecycle.record_run_result(
            self._domain, run.id, result, backoff_max=self._backoff_max
        )
        await self._archive(run.id, task_id)
        await lifecycle.mark_logs_archived(self._domain, run.id)
        await self._runtime.remove(task_id)
        self._events.forget(task_id)

    async def _record(self, run: Run, result: lifecycle.RunResult) -> None:
        await lifecycle.record_run_result(
            self._domain, run.id, result, backoff_max=self._backoff_max
        )

    async def _remove_leftover(self, task: TaskState, run_id: str) -> None:
        """A task no active run owns: keep its output if its run still wants it, remove it."""
        async with self._domain.store.reading() as session:
            run = await session.get(Run, run_id) if run_id else None
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

    async def _remove_volumes(self, container_id: str) -> None:
        try:
            await self._runtime.remove_volumes(
                labels.workload_selector(self._instance_id, container_id)
            )
        except RuntimeDriverError as exc:
            log.warning("could not remove the volumes of %s: %s", container_id, exc)

    async def _remove_unused_networks(self, user_id: str) -> None:
        selector = {**labels.instance_selector(self._instance_id), labels.USER: user_id}
        try:
            await self._runtime.remove_networks(selector)
        except RuntimeDriverError as exc:
            log.warning("could not remove the network of %s: %s", user_id, exc)

    def _engine_down(self, exc: RuntimeUnavailable) -> None:
        if self.engine_error is None:
            log.error("container engine unavailable: %s", exc)
        self.engine_error = str(exc)
