"""One-off commands and terminals in a workload's running task.

Both pick a running task of the workload (a named run, or the lowest replica), check it
belongs to the caller, and talk to the runtime; no transaction is held while they run.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from berth.domain.accounts import load_compute_user
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.errors import Conflict, Invalid, NotFound
from berth.domain.workloads import owned_workload
from berth.runtime.base import (
    CommandNotFound,
    ExecResult,
    ExecSpec,
    OutputCallback,
    TaskId,
    TaskNotFound,
)
from berth.store.models import Run, Workload

MAX_EXEC_OUTPUT_BYTES = 1024 * 1024
"""Per stream; beyond it output is dropped and the result says it was truncated."""


@dataclass(frozen=True)
class Target:
    workload: Workload
    run: Run


async def running_target(
    domain: Domain, actor: Actor, workload_id: str, run_id: str | None
) -> Target:
    """The task to run in; `Conflict` with what to do when none runs."""
    async with domain.store.reading() as session:
        await load_compute_user(session, actor.user_id)
        workload = await owned_workload(session, actor, workload_id)
        if run_id is not None:
            run = await session.get(Run, run_id)
            if run is None or run.workload_id != workload.id:
                raise NotFound(f"task {run_id} not found")
            if run.status != "running" or run.task_id is None:
                raise Conflict(f"task {run_id} is not running (it is {run.status})")
            return Target(workload=workload, run=run)
        run = await session.scalar(
            select(Run)
            .where(Run.workload_id == workload.id, Run.status == "running")
            .order_by(Run.slot, Run.created_at.desc())
            .limit(1)
        )
    if run is None or run.task_id is None:
        hint = "start it first" if workload.type == "service" else "trigger a run first"
        raise Conflict(f"no task of workload {workload_id} is running; {hint}")
    return Target(workload=workload, run=run)


async def check_target(domain: Domain, actor: Actor, workload_id: str, run_id: str | None) -> None:
    """Refuse now what `running_target` would refuse (used before gating a call)."""
    await running_target(domain, actor, workload_id, run_id)


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
    return target.run, result


def no_such_command(command: str | list[str], exc: CommandNotFound) -> Invalid:
    if isinstance(command, str):
        return Invalid(
            "command: the image has no /bin/sh to run a command string; "
            "pass the command as an argv list instead",
            field="command",
        )
    return Invalid(f"command: {exc}", field="command")
