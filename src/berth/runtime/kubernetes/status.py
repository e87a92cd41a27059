"""Pure reading of Pod objects (no I/O): a pod's `TaskState`, and the task events a change
of its status means.

Kubernetes has no "created, not started" container and no event stream of container
actions; the driver reads both out of pods:

- A pod carrying berth's start gate (`mapping.START_GATE`) is `CREATED`; any other pod that
  has not ended is `RUNNING` (it may still be scheduled or starting).
- A container that ended is `EXITED` with its exit code. A command the runtime could not
  start (`StartError`) exits 127 when its program does not exist, as a shell would say, else
  128; the runtime's message is the task's `error`.
- A pod that cannot ever start (its image cannot be pulled, its container not created) is
  `EXITED` with exit code 128 and the reason as `error`, so it does not stay pending.
- Events: `start` when the container is first seen started, `oom` and `die` (with
  `exitCode`) when it is first seen ended, `destroy` when the pod is deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from berth.runtime.base import TaskEvent, TaskId, TaskState, TaskStatus
from berth.runtime.kubernetes.mapping import CONTAINER, START_GATE, task_id

Json = dict[str, Any]

START_FAILURE_EXIT = 128
"""What containerd reports for a command it could not start."""
MISSING_PROGRAM_EXIT = 127
STOPPED_EXIT = 137
"""A pod that ended before its container ran (evicted, deadline): killed."""

IMAGE_FAILURES = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
CREATE_FAILURES = frozenset({"CreateContainerConfigError", "CreateContainerError"})
_MISSING_PROGRAM = re.compile(
    r"no such file or directory|executable file not found|not found in \$PATH", re.IGNORECASE
)
_EPOCH = datetime(1970, 1, 2, tzinfo=UTC)


def parse_time(value: Any) -> datetime | None:
    """An API timestamp (RFC 3339, `Z`) as aware UTC; None for none or the zero time."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return None if parsed < _EPOCH else parsed.astimezone(UTC)


def container_status(pod: Json) -> Json:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return dict(status)
    return {}


def is_gated(pod: Json) -> bool:
    gates = (pod.get("spec") or {}).get("schedulingGates") or []
    return any(gate.get("name") == START_GATE for gate in gates)


def waiting_failure(pod: Json) -> tuple[str, str] | None:
    """(reason, message) when the pod's container waits on something that will not resolve
    by itself (an image that cannot be pulled, a container that cannot be created)."""
    waiting = (container_status(pod).get("state") or {}).get("waiting") or {}
    reason = str(waiting.get("reason") or "")
    if reason in IMAGE_FAILURES or reason in CREATE_FAILURES:
        return reason, str(waiting.get("message") or reason)
    return None


def unschedulable(pod: Json) -> str | None:
    """The scheduler's reason when it found no node for the pod, else None."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return str(condition.get("message") or "no node can run the task")
    return None


def task_state(pod: Json) -> TaskState:
    metadata: Json = pod.get("metadata") or {}
    status: Json = pod.get("status") or {}
    labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    base = TaskState(
        task_id=task_id(str(metadata.get("namespace")), str(metadata.get("name"))),
        name=str(metadata.get("name")),
        labels=labels,
        status=TaskStatus.RUNNING,
    )
    state: Json = container_status(pod).get("state") or {}
    terminated: Json | None = state.get("terminated")
    if terminated is not None:
        reason = str(terminated.get("reason") or "")
        message = str(terminated.get("message") or "") or None
        exit_code = int(terminated.get("exitCode") or 0)
        error = None
        if reason == "StartError":
            missing = message is not None and _MISSING_PROGRAM.search(message)
            exit_code = MISSING_PROGRAM_EXIT if missing else START_FAILURE_EXIT
            error = message or reason
        started = parse_time(terminated.get("startedAt"))
        finished = parse_time(terminated.get("finishedAt"))
        if started is not None and finished is not None and finished < started:
            started, finished = finished, started
        return replace(
            base,
            status=TaskStatus.EXITED,
            exit_code=exit_code,
            oom_killed=reason == "OOMKilled",
            error=error,
            started_at=started,
            finished_at=finished,
        )
    running: Json | None = state.get("running")
    if running is not None:
        return replace(
            base, status=TaskStatus.RUNNING, started_at=parse_time(running.get("startedAt"))
        )
    failure = waiting_failure(pod)
    if failure is not None or status.get("phase") in ("Failed", "Succeeded"):
        reason, message = failure or (
            str(status.get("reason") or "Failed"),
            str(status.get("message") or "the pod ended before its container ran"),
        )
        return replace(
            base,
            status=TaskStatus.EXITED,
            exit_code=START_FAILURE_EXIT if failure else STOPPED_EXIT,
            error=f"{reason}: {message}",
            finished_at=parse_time(status.get("startTime")),
        )
    if is_gated(pod):
        return replace(base, status=TaskStatus.CREATED)
    return replace(base, status=TaskStatus.RUNNING)


@dataclass(frozen=True)
class Seen:
    """What the event stream last reported of one pod."""

    started: bool
    ended: bool


def seen_of(pod: Json) -> Seen:
    state = task_state(pod)
    return Seen(
        started=state.started_at is not None or state.status is TaskStatus.EXITED,
        ended=state.status is TaskStatus.EXITED,
    )


def events_between(before: Seen | None, pod: Json, *, deleted: bool) -> list[TaskEvent]:
    """The events that take a pod from `before` (None: not seen yet) to `pod`."""
    state = task_state(pod)
    labels = {**state.labels, "name": state.name}
    events: list[TaskEvent] = []
    was = before or Seen(started=False, ended=False)
    now = seen_of(pod)
    if before is None and not deleted:
        events.append(_event(state.task_id, "create", labels, None))
    if now.started and not was.started:
        events.append(_event(state.task_id, "start", labels, state.started_at))
    if now.ended and not was.ended:
        if state.oom_killed:
            events.append(_event(state.task_id, "oom", labels, state.finished_at))
        code = state.exit_code
        died = {**labels, "exitCode": str(code)} if code is not None else labels
        events.append(_event(state.task_id, "die", died, state.finished_at, code))
    if deleted:
        events.append(_event(state.task_id, "destroy", labels, None))
    return events


def _event(
    task: TaskId,
    action: str,
    labels: dict[str, str],
    at: datetime | None,
    exit_code: int | None = None,
) -> TaskEvent:
    return TaskEvent(task_id=task, action=action, labels=labels, at=at, exit_code=exit_code)
