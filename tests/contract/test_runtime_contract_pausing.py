"""What `berth.runtime.base.Pausing` promises of every driver that offers it: a frozen task
is still listed as running, takes no command until resumed, keeps its state, and can be
stopped; pause and resume are idempotent. A driver without the ability (Kubernetes) is
skipped here: the domain refuses a pause on it (tests/fast/test_pause.py)."""

from __future__ import annotations

import pytest

from berth.runtime.base import ExecSpec, Pausing, TaskId, TaskNotFound, TaskStatus
from tests.support.drivers import Env


def freezer(env: Env) -> Pausing:
    if not isinstance(env.runtime, Pausing):
        pytest.skip(f"{type(env.runtime).__name__} cannot pause a task")
    return env.runtime


async def test_a_paused_task_is_listed_running_takes_no_command_and_resumes_as_it_was(
    env: Env,
) -> None:
    runtime = freezer(env)
    task = await env.running_task("frozen")
    await env.runtime.exec(task, ExecSpec(argv=["sh", "-c", "echo kept > /tmp/state"]))
    await runtime.pause(task)
    await runtime.pause(task)  # idempotent
    (listed,) = await env.runtime.list_tasks(env.labels)
    assert listed.status is TaskStatus.RUNNING
    state = await env.runtime.inspect(task)
    assert state is not None and state.status is TaskStatus.RUNNING
    with pytest.raises(TaskNotFound, match="paused"):
        await env.runtime.exec(task, ExecSpec(argv=["true"]))

    await runtime.resume(task)
    await runtime.resume(task)  # idempotent
    kept = await env.runtime.exec(task, ExecSpec(argv=["cat", "/tmp/state"]))
    assert (kept.exit_code, kept.stdout) == (0, b"kept\n")


async def test_a_paused_task_stops_and_a_missing_one_is_not_found(env: Env) -> None:
    runtime = freezer(env)
    task = await env.running_task("stopped")
    await runtime.pause(task)
    await env.runtime.stop(task, grace_seconds=1)
    assert (await env.wait_exited(task)).status is TaskStatus.EXITED
    with pytest.raises(TaskNotFound):
        await runtime.pause(task)
    with pytest.raises(TaskNotFound):
        await runtime.resume(task)
    with pytest.raises(TaskNotFound):
        await runtime.pause(TaskId("no-such-task-" + env.run))
