"""The reconciler: converges the engine to the desired state, one idempotent pass at a time.

A pass (1) lets the domain create and stop runs so services match their replicas, (2) lists
berth's tasks on the engine, (3) acts on each active run: launch it, adopt a task launched
before a crash, stop it, or archive its output and record its result once its task ended,
(4) removes tasks no active run owns, and (5) refreshes the statuses of the workloads it
acted on and of the next slice of all workloads (`STATUS_SWEEP`).

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

The operations themselves (launch, adopt, finish, ...) are `run_actions`; the store is read
and written only through the domain (`active_runs`, `lifecycle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from datetime import datetime

from berth.control.event_memory import TaskEventMemory
from berth.control.operations import Operation, Operations
from berth.control.run_actions import RunActions
from berth.domain import active_runs, labels, lifecycle, warm_pools
from berth.domain.context import Domain
from berth.domain.records import Run, Workload
from berth.runtime.base import (
    Runtime,
    RuntimeUnavailable,
    TaskEvent,
    TaskId,
    TaskState,
    TaskStatus,
)

log = logging.getLogger("berth.reconciler")

FAILED_PASS_RETRY = 1.0
"""Seconds before a pass that failed (e.g. on a database error) is tried again."""
ENGINE_DOWN_RETRY = 2.0
"""Seconds between passes while the engine cannot be reached, whatever the interval: the
engine's return is noticed this fast even when its event stream has not reconnected yet."""
MIN_WAIT = 0.05
SLOW_PASS = 1.0
"""Seconds beyond which a full pass is logged at info (every pass is logged at debug): the
store reads of a pass run on the event loop, so a pass this long delays the API's answers."""
UNCHANGING_ACTIONS = frozenset(
    {
        "attach",
        "detach",
        "resize",
        "top",
        "export",
        "commit",
        "copy",
        "archive-path",
        "pause",
        "unpause",
    }
)
"""Engine event actions that say nothing about a task's state (nor do `exec_*` ones)."""
DEATH_FOLLOWS = frozenset({"kill", "stop", "oom"})
"""Actions whose state change, if any, a `die` event reports."""
STATUS_SWEEP = 1000
"""Workloads whose statuses a pass refreshes beyond those it acts on, continuing where the
last pass stopped: every status is re-derived within ceil(workloads / 1000) passes, and a
pass's cost does not grow with the workloads that merely exist."""
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
        self._wake = asyncio.Event()
        self._pass_lock = asyncio.Lock()
        self._plan_lock = asyncio.Lock()
        """Serializes run planning: a pass's and a changed workload's."""
        self._operations = Operations(ended=self._operation_ended, engine_down=self._engine_down)
        self._events = TaskEventMemory()
        self._act = RunActions(
            domain,
            runtime,
            self._events,
            instance_id=instance_id,
            stop_grace=stop_grace,
            backoff_max=backoff_max,
            log_max_bytes=log_max_bytes,
            now=self._now,
        )
        self.engine_error: str | None = None
        """Why the engine could not be reached in the last pass, or None when it could."""
        self._backoff_due: datetime | None = None
        """When the earliest crash back-off seen in the last pass ends (a replacement is due)."""
        self._sweep_after = ""
        """Where the next pass's slice of the status sweep starts (`STATUS_SWEEP`)."""

    def kick(self) -> None:
        """Ask for a pass as soon as possible."""
        self._wake.set()

    @property
    def pass_requested(self) -> bool:
        """Whether a pass was asked for (`kick`) and has not begun yet."""
        return self._wake.is_set()

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
                self._start(run_id, self._act.finish_exited(run_id, event))
            return
        if (run_id and run_id in self._operations) or event.action in DEATH_FOLLOWS:
            return
        self.kick()

    def start_now(self, run_id: str) -> None:
        """Start a promoted standby run's created task at once (a request waits on it),
        without waiting for a pass; a pass that finds it under way leaves it alone."""
        self._start(run_id, self._act.start_promoted(run_id))

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
            started = time.perf_counter()
            now = self._now()
            async with self._plan_lock:
                await lifecycle.converge_desired_runs(self._domain, now)
            # Runs are read before tasks are listed: a task missing from the list then really
            # is gone, since a run becomes `running` only after its task exists. Runs with an
            # engine operation under way now, or started while this pass runs, are left to
            # it: what this pass reads of them may be stale by the time the list comes back.
            with self._operations.noting() as busy:
                counts = await self._observe_and_act(now, busy)
            elapsed = time.perf_counter() - started
            workloads, runs, tasks, listing = counts
            log.log(
                logging.INFO if elapsed >= SLOW_PASS else logging.DEBUG,
                "full pass: %d active runs, %d workloads read, %d tasks in %.1f ms"
                " (listing the engine's tasks %.1f ms of it)",
                runs,
                workloads,
                tasks,
                elapsed * 1000,
                listing * 1000,
            )

    async def _observe_and_act(self, now: datetime, busy: set[str]) -> tuple[int, int, int, float]:
        """The rest of a pass, from reading the runs on (see `reconcile_once`); the counts
        of workloads, active runs and engine tasks it saw (-1 tasks: the engine was away),
        and the seconds the engine took to list the tasks (waited for, not the loop's)."""
        snapshot = await active_runs.active_runs(self._domain)
        active, workloads = snapshot.runs, snapshot.workloads
        for run in active:
            # A promoted standby's task is known to exist, created: start it now, before
            # the engine is listed (a wake waits on this).
            if (
                active_runs.awaits_launch(run)
                and run.task_id
                and run.id not in busy
                and run.workload_id in workloads
            ):
                self._start(run.id, self._act.start_created(run, TaskId(run.task_id)))
        self._backoff_due = min(
            (
                w.backoff_until
                for w in workloads.values()
                if w.backoff_until is not None and w.backoff_until > now
            ),
            default=None,
        )
        listing = time.perf_counter()
        try:
            tasks = await self._runtime.list_tasks(labels.instance_selector(self._instance_id))
        except RuntimeUnavailable as exc:
            self._engine_down(exc)
            await self._refresh_statuses(workloads)
            return len(workloads), len(active), -1, time.perf_counter() - listing
        listing = time.perf_counter() - listing
        self.engine_error = None
        by_run = {task.labels.get(labels.RUN, ""): task for task in tasks}
        for run in active:
            if run.id not in busy:
                self._act_on_run(run, workloads.get(run.workload_id), by_run.get(run.id))
        active_ids = {run.id for run in active}
        leftovers = {
            run_id: task
            for run_id, task in by_run.items()
            if run_id not in active_ids and run_id not in busy
        }
        for run_id in await self._still_pooled(leftovers.values()):
            del leftovers[run_id]
        for run_id, task in leftovers.items():
            self._start(run_id or task.task_id, self._act.remove_leftover(task, run_id))
        # A workload goes only once none of its tasks is left on the engine, so its
        # volumes and network are no longer in use when they are removed.
        on_engine = {task.labels.get(labels.WORKLOAD, "") for task in tasks}
        purged = await lifecycle.purge_deleted_workloads(self._domain, keep=on_engine)
        for run_id in purged.run_ids:
            self._domain.logs.delete(run_id)
        for container_id in purged.container_ids:
            await self._act.remove_volumes(container_id)
        for user_id in purged.idle_user_ids:
            await self._act.remove_unused_networks(user_id)
        await self._refresh_statuses(workloads)
        return len(workloads), len(active), len(tasks), listing

    async def _refresh_statuses(self, acted_on: Iterable[str]) -> None:
        """Re-derive the statuses of the workloads this pass acted on (those with active
        runs or backing off: a back-off's countdown is in its status) and of the sweep's
        next slice. A change's own transaction derives its workload's status; the sweep
        is the safety net that corrects one gone stale anyway."""
        now = self._now()
        await lifecycle.refresh_workload_statuses(self._domain, now, set(acted_on))
        self._sweep_after = await lifecycle.refresh_status_slice(
            self._domain, now, after=self._sweep_after, limit=STATUS_SWEEP
        )

    def _act_on_run(self, run: Run, workload: Workload | None, task: TaskState | None) -> None:
        if run.id in self._operations:
            return
        waiting = task is None or task.status is TaskStatus.CREATED
        if run.standby and not run.stop_requested and waiting:
            # A sleeping service's next task: created ahead, started only by a wake.
            if task is None and workload is not None:
                self._start(run.id, self._act.prepare_standby(run, workload))
            return
        if task is not None and task.status is TaskStatus.CREATED:
            # Created but not started: a promoted standby, or berth stopped between create
            # and start. Starting it is all that is left; a run no longer wanted just
            # loses its container.
            if workload is not None and not run.stop_requested:
                self._start(run.id, self._act.start_created(run, task.task_id))
            else:
                self._start(run.id, self._act.discard(run, task))
            return
        if run.status == "pending":
            if task is not None:
                self._start(run.id, self._act.adopt(run, task))
            elif run.stop_requested or workload is None:
                nothing_ran = lifecycle.RunResult(None, self._now())
                self._start(run.id, self._act.record(run, nothing_ran))
            else:
                self._start(run.id, self._act.launch(run, workload))
            return
        if task is None:
            result = lifecycle.RunResult(
                None, self._now(), error="the task's container disappeared from the engine"
            )
            self._start(run.id, self._act.record(run, result))
        elif task.status == TaskStatus.EXITED:
            self._start(run.id, self._act.finish(run, task))
        elif run.stop_requested:
            self._start(run.id, self._act.stop(task))

    async def _still_pooled(self, tasks: Iterable[TaskState]) -> set[str]:
        """The run ids of those tasks that a warm pool still holds (their workload does not
        exist: the pool controller, not a pass, sees to them)."""
        pooled = {
            task.labels.get(labels.WORKLOAD, ""): task.labels.get(labels.RUN, "")
            for task in tasks
            if labels.POOLED in task.labels
        }
        taken = await warm_pools.owners(self._domain, pooled)
        return {run_id for workload_id, run_id in pooled.items() if workload_id not in taken}

    def _start(self, key: str, work: Operation) -> None:
        self._operations.start(key, work)

    def _operation_ended(self, key: str, settled: bool) -> None:
        """After an operation: handle a `die` held for its run, and ask for a pass unless
        the operation settled its run."""
        death = self._events.take_held_death(key)
        if death is not None:
            self._start(key, self._act.finish_exited(key, death))
        if not settled:
            self.kick()

    async def _launch_planned(self, workload_id: str) -> bool:
        """Plan one changed workload's runs (a service's or container's: a job's or
        schedule's are made by the change itself) and launch its pending ones, as a pass
        would (without listing the engine: a launch finds a task made before by its name),
        then wait for those launches. True (no pass needed) if each launch (if any) left its
        run running and nothing else of the workload waits on a pass.

        One read tells whether there is anything to plan, launch or re-derive
        (`changed_workload`); most changes have nothing, and cost that read alone."""
        with self._operations.noting() as busy:
            changed = await active_runs.changed_workload(self._domain, workload_id, skip=busy)
        launch_state = changed.launch
        if changed.plan_needed:
            async with self._plan_lock:
                await lifecycle.converge_desired_runs(
                    self._domain, self._now(), workload_id=workload_id
                )
            with self._operations.noting() as busy:
                launch_state = await active_runs.workload_launch(
                    self._domain, workload_id, skip=busy
                )
        if launch_state is None:
            return False
        workload, active, env = launch_state.workload, launch_state.runs, launch_state.env
        # A pass prepares standbys and carries out stops; and a run another operation holds
        # may have read this workload before the change (e.g. before a stop was asked).
        for_a_pass = launch_state.skipped or any(
            run.standby or run.stop_requested for run in active
        )
        launches: list[asyncio.Task[bool]] = []
        for run in active:
            if not active_runs.awaits_launch(run):
                continue
            if run.task_id:
                launch = self._operations.start(
                    run.id, self._act.start_created(run, TaskId(run.task_id))
                )
            else:
                launch = self._operations.start(run.id, self._act.launch(run, workload, env))
            if launch is not None:
                launches.append(launch)
        if changed.plan_needed or changed.status_stale:
            await lifecycle.refresh_workload_statuses(self._domain, self._now(), [workload_id])
        if not launches:
            # Nothing to start (a schedule made, a secret set, a scale that plans nothing):
            # a pass is needed only for what passes do (standbys, stops). Not asking for one
            # keeps a change's cost independent of how many other workloads exist.
            return not for_a_pass
        await asyncio.wait(launches)
        return not for_a_pass and all(not t.cancelled() and t.result() for t in launches)

    def _engine_down(self, exc: RuntimeUnavailable) -> None:
        if self.engine_error is None:
            log.error("container engine unavailable: %s", exc)
        self.engine_error = str(exc)
