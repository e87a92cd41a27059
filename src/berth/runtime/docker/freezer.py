"""Pausing and resuming a Docker task: the engine's pause (the cgroup freezer).

The engine refuses (409 or 500, by version) both a pause that has nothing to do (already
paused, not paused) and one of a task that does not run; the task's state tells them apart,
so pausing a paused task and resuming a running one are no-ops, as the contract asks.
"""

from __future__ import annotations

from typing import Literal

from berth.runtime.base import TaskId, TaskNotFound
from berth.runtime.docker.client import EngineClient, unexpected
from berth.runtime.docker.mapping import path_segment


async def freeze(
    engine: EngineClient, task_id: TaskId, action: Literal["pause", "unpause"]
) -> None:
    """`pause` or `unpause` the task; see `berth.runtime.base.Pausing` for the rules."""
    response = await engine.request("POST", f"/containers/{path_segment(task_id)}/{action}")
    if response.status_code in (200, 204):
        return
    if response.status_code == 404:
        raise TaskNotFound(f"task {task_id} does not exist")
    # Already as asked, or not running: the engine says either with a 409 or a 500.
    inspected = await engine.request("GET", f"/containers/{path_segment(task_id)}/json")
    if inspected.status_code == 404:
        raise TaskNotFound(f"task {task_id} does not exist")
    state = (inspected.json().get("State") or {}) if inspected.status_code == 200 else {}
    if state.get("Running") and bool(state.get("Paused")) == (action == "pause"):
        return
    if inspected.status_code == 200 and not state.get("Running"):
        raise TaskNotFound(f"task {task_id} does not run")
    raise unexpected(f"{action} of task {task_id}", response)
