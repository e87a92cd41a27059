"""Turning a run into a task spec, and a finished task into a run result."""

from __future__ import annotations

import hashlib
from datetime import datetime

from berth.domain import labels
from berth.domain.lifecycle import RunResult
from berth.domain.records import Run, Workload
from berth.runtime.base import TaskSpec, TaskState


def task_name(instance_id: str, run_id: str) -> str:
    """Deterministic, so a launch repeated after a crash finds the task it already made."""
    return f"berth-{instance_id}-{run_id.removeprefix('run_')}"


def build_task_spec(
    *,
    instance_id: str,
    workload: Workload,
    run: Run,
    env: dict[str, str],
    log_max_bytes: int,
) -> TaskSpec:
    command: list[str] | None
    if workload.command_text is not None:
        command = ["/bin/sh", "-c", workload.command_text]
    elif workload.command is not None:
        command = [str(part) for part in workload.command]
    else:
        command = None
    return TaskSpec(
        name=task_name(instance_id, run.id),
        image=workload.image,
        command=command,
        env=env,
        labels={
            labels.INSTANCE: instance_id,
            labels.WORKLOAD: workload.id,
            labels.RUN: run.id,
            labels.USER: workload.user_id,
            labels.GENERATION: str(run.generation),
        },
        cpu=run.cpu,
        memory_mb=run.memory_mb,
        ports=(workload.port,) if workload.port else (),
        network=labels.tenant_network(instance_id, workload.user_id),
        network_labels=labels.tenant_network_labels(instance_id, workload.user_id),
        log_max_bytes=log_max_bytes,
        volumes=tuple(
            (volume_name(instance_id, workload.id, str(path)), str(path))
            for path in (workload.mount_paths or [])
        ),
        volume_labels={
            **labels.workload_selector(instance_id, workload.id),
            labels.USER: workload.user_id,
        },
        volume_size_gb=workload.storage_gb,
    )


def volume_name(instance_id: str, workload_id: str, path: str) -> str:
    """Stable per mount path, so a path kept across a mounts update keeps its data."""
    digest = hashlib.sha256(path.encode()).hexdigest()[:12]
    return f"berth-{instance_id}-{workload_id}-{digest}"


def result_of(task: TaskState, *, logs_archived: bool, now: datetime) -> RunResult:
    """A finished task's result; `now` stands in for a finish the engine did not stamp."""
    error = None
    if task.error and task.exit_code not in (0, None):
        error = f"the task could not run: {task.error}"
    return RunResult(
        exit_code=task.exit_code,
        started_at=task.started_at,
        finished_at=task.finished_at or now,
        oom_killed=task.oom_killed,
        error=error,
        logs_archived=logs_archived,
    )
