"""One-off commands and terminals in a workload's running task.

Both pick a task of the workload that will keep running (a named run, or the lowest replica
of the current generation), check it belongs to the caller, and talk to the runtime; no
transaction is held while they run.

A task being retired is never picked: one asked to stop, or a service's or container's task
of an older generation (a secret set bumps the generation, and the reconciler stops the old
task as soon as its replacement runs), since a command there would be cut (`exit 137`). While
the workload's current task is still starting, the pick waits for it for up to
`ROLLOUT_WAIT_SECONDS`, then answers `RollingOut` (409: retry shortly). A paused workload
is resumed before its task is handed out (`domain.pausing`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from berth.domain.accounts import load_compute_user
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.errors import Conflict, Invalid, NotFound, NotRunning
from berth.domain.events import Subscription
from berth.domain.pausing import wake_run
from berth.domain.workloads import owned_workload
from berth.runtime.base import (
    CommandNotFound,
    ExecResult,
    ExecSpec,
    OutputCallback,
    TaskId,
    TaskNotFound,
)
from berth.store.models import ACTIVE_RUN_STATUSES, Run, Workload

MAX_EXEC_OUTPUT_BYTES = 1024 * 1024
"""Per stream; beyond it output is dropped and the result says it was truncated."""
ROLLOUT_WAIT_SECONDS = 30.0
"""How long an exec or shell waits for the workload's starting task (a roll onto a new
generation, a service just created or woken) before answering `RollingOut`; the same budget
the engine gives a command to start."""
ROLLOUT_POLL_SECONDS = 1.0
"""While waiting, the pick is repeated on every event about the workload, and at least
this often (events of another replica may be late)."""
ROLLED_TYPES = ("service", "container")
"""Workload types whose tasks are replaced when the generation changes (jobs and schedules
keep their running task and pick the change up on their next run)."""


Owner = Callable[[AsyncSession, Actor, str], Awaitable[Workload]]
"""Loads the caller's own workload of an id (`owned_workload`, or `owned_container` for a
dev box), raising `NotFound` for any other."""


class RollingOut(Conflict):
    """No task of the workload can take a command yet, but one is starting: retry shortly."""


@dataclass(frozen=True)
class Target:
    workload: Workload
    run: Run


def retiring(workload: Workload, run: Run) -> bool:
    """Whether `run`'s task is on its way out: asked to stop, or of a generation its
    workload rolls away from."""
    return run.stop_requested or (
        workload.type in ROLLED_TYPES and run.generation != workload.generation
    )


async def running_target(
    domain: Domain,
    actor: Actor,
    workload_id: str,
    run_id: str | None,
    *,
    wait_seconds: float = ROLLOUT_WAIT_SECONDS,
    owner: Owner = owned_workload,
) -> Target:
    """The task to run in; `Conflict` with what to do when none runs (`RollingOut` once
    `wait_seconds` passed while one is starting). While it waits, the engine is asked
    whether it answers: a task cannot start while it is away, so `RuntimeUnavailable` is
    raised at once rather than after the wait."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    changes: Subscription | None = None
    try:
        while True:
            try:
                target = await _pick_target(domain, actor, workload_id, run_id, owner)
            except RollingOut:
                if domain.runtime is not None:
                    await domain.runtime.ping()
                if loop.time() >= deadline:
                    raise
                if changes is None:
                    # Subscribed, then picked again: a start between the two is not missed.
                    changes = domain.bus.subscribe(maxsize=64)
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(ROLLOUT_POLL_SECONDS, deadline - loop.time())):
                        await _next_change(changes, workload_id)
            else:
                await wake_run(domain, target.run)  # a paused workload is resumed first
                return target
    finally:
        if changes is not None:
            changes.close()


async def _next_change(changes: Subscription, workload_id: str) -> None:
    """Until an event about the workload (a run started, a status changed) arrives: a
    task's start is seen at once, not at the next poll."""
    while True:
        event = await changes.get()
        if event.workload_id in (workload_id, None):
            return


async def _pick_target(
    domain: Domain, actor: Actor, workload_id: str, run_id: str | None, owner: Owner
) -> Target:
    async with domain.store.reading() as session:
        await load_compute_user(session, actor.user_id)
        workload = await owner(session, actor, workload_id)
        if run_id is not None:
            run = await session.get(Run, run_id)
            if run is None or run.workload_id != workload.id or run.standby:
                raise NotFound(f"task {run_id} not found")
            return Target(workload=workload, run=_named_run(workload, run))
        active = list(
            await session.scalars(
                select(Run)
                .where(
                    Run.workload_id == workload.id,
                    Run.status.in_(ACTIVE_RUN_STATUSES),
                    Run.standby.is_(False),
                )
                .order_by(Run.slot, Run.created_at.desc())
            )
        )
    usable = [run for run in active if not retiring(workload, run)]
    for run in usable:
        if run.status == "running" and run.task_id is not None:
            return Target(workload=workload, run=run)
    # An older generation's task not yet asked to stop waits for its replacement, which
    # the reconciler creates (if it has not yet) and starts.
    replaced = [run for run in active if not run.stop_requested and retiring(workload, run)]
    if replaced:
        raise RollingOut(
            f"workload {workload_id} is rolling out generation {workload.generation} and "
            "its new task is not running yet; retry in a few seconds"
        )
    just_created = (
        workload.type in ROLLED_TYPES
        and workload.status == "pending"
        and workload.desired_state == "running"
    )
    if just_created or any(run.status == "pending" for run in usable):
        raise RollingOut(
            f"the task of workload {workload_id} is starting and not running yet; "
            "retry in a few seconds"
        )
    if workload.type == "container":
        raise NotRunning(f"dev box {workload_id} is not running; start it first")
    hint = "start it first" if workload.type == "service" else "trigger a run first"
    raise NotRunning(f"no task of workload {workload_id} is running; {hint}")


def _named_run(workload: Workload, run: Run) -> Run:
    """A run the caller named, if a command may run in it now."""
    if run.status != "running" or run.task_id is None:
        raise NotRunning(f"task {run.id} is not running (it is {run.status})")
    if run.stop_requested:
        why = f" ({run.stop_reason})" if run.stop_reason else ""
        raise Conflict(
            f"task {run.id} is being stopped{why}; omit `task` to use a running task of "
            f"workload {workload.id}"
        )
    if retiring(workload, run):
        raise Conflict(
            f"task {run.id} runs generation {run.generation} of workload {workload.id} and is "
            f"being replaced by generation {workload.generation}; omit `task` to use the "
            "current task"
        )
    return run


async def check_target(
    domain: Domain,
    actor: Actor,
    workload_id: str,
    run_id: str | None,
    *,
    owner: Owner = owned_workload,
) -> None:
    """Refuse now what `running_target` would refuse (used before gating a call); a task
    still starting is not a reason to refuse."""
    with contextlib.suppress(RollingOut):
        await _pick_target(domain, actor, workload_id, run_id, owner)


def command_argv(command: str | list[str]) -> list[str]:
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    if not command:
        raise Invalid("command: must not be empty", field="command")
    return list(command)


async def exec_command(
    domain: Domain,
    actor: Actor,
    workload_id: str,
    *,
    command: str | list[str],
    stdin: str | None,
    timeout_seconds: float,
    run_id: str | None,
    on_output: OutputCallback | None = None,
) -> tuple[Run, ExecResult]:
    target = await running_target(domain, actor, workload_id, run_id)
    assert domain.runtime is not None and target.run.task_id is not None
    spec = ExecSpec(
        argv=command_argv(command),
        stdin=stdin.encode() if stdin is not None else None,
        timeout_seconds=timeout_seconds,
        max_output_bytes=MAX_EXEC_OUTPUT_BYTES,
        on_output=on_output,
    )
    try:
        result = await domain.runtime.exec(TaskId(target.run.task_id), spec)
    except TaskNotFound as exc:
        raise Conflict(f"the task stopped before the command could run: {exc}") from exc
    except CommandNotFound as exc:
        raise no_such_command(command, exc) from exc
    finally:
        domain.pools.used(target.run.task_id)  # a warm pool task's hand-over goes on
    return target.run, result


def no_such_command(command: str | list[str], exc: CommandNotFound) -> Invalid:
    if isinstance(command, str):
        return Invalid(
            "command: the image has no /bin/sh to run a command string; "
            "pass the command as an argv list instead",
            field="command",
        )
    return Invalid(f"command: {exc}", field="command")
