"""The drivers the runtime contract is checked against (`tests/contract`), and a test's view
of one (also the Docker driver's own tests in `tests/integration/test_docker_*.py`).

Every driver gets the same commands (busybox's `sh`, `echo`, `cat`, `sleep`, `httpd`...: the
in-memory driver's toy shell means the same by them as the test image does). The in-memory
driver runs on the real clock here, so a script's `sleep` passes as on an engine, and waiting
is the same polling with a deadline for both.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import pytest

from berth.runtime.base import Runtime, TaskId, TaskSpec, TaskState, TaskStatus
from berth.runtime.docker import DockerRuntime
from berth.runtime.kubernetes import KubernetesRuntime
from berth.runtime.memory import MemoryRuntime
from berth.testing.waiting import poll
from tests.support.cluster import KUBECONFIG, NO_CLUSTER, new_namespace
from tests.support.engine import ENGINE_SOCKET as SOCKET
from tests.support.server import TEST_IMAGE as IMAGE

RUN_LABEL = "berth.test.run"

DRIVERS = (
    pytest.param("memory", id="memory"),
    pytest.param("docker", id="docker", marks=pytest.mark.engine),
    pytest.param("kubernetes", id="kubernetes", marks=pytest.mark.engine),
)
"""Every driver the contract holds for; the Docker one needs the engine (marked `engine`),
the Kubernetes one a cluster named by `BERTH_TEST_KUBECONFIG`."""


def open_driver(name: str) -> Runtime:
    if name == "memory":
        return MemoryRuntime()
    if name == "kubernetes":
        if not KUBECONFIG:
            pytest.skip(NO_CLUSTER)
        # A namespace of its own per test for tasks without a tenant network; removed with
        # everything in it by `Env.clean_up`.
        return KubernetesRuntime(KUBECONFIG, namespace=new_namespace())
    if not os.path.exists(SOCKET):
        pytest.skip(f"no container engine at {SOCKET}")
    return DockerRuntime(SOCKET)


class Env:
    """One test's runtime, unique run id and helpers."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.run = secrets.token_hex(4)
        self.labels = {RUN_LABEL: self.run}

    def spec(self, suffix: str, command: list[str] | None, **overrides: Any) -> TaskSpec:
        fields: dict[str, Any] = {
            "name": f"berth-test-{self.run}-{suffix}",
            "image": IMAGE,
            "command": command,
            "env": {},
            "labels": dict(self.labels),
            "cpu": 0.5,
            "memory_mb": 64,
        }
        fields.update(overrides)
        return TaskSpec(**fields)

    async def running_task(self, suffix: str, command: list[str] | None = None) -> TaskId:
        state = await self.runtime.launch(self.spec(suffix, command or ["sleep", "300"]))
        assert state.status is TaskStatus.RUNNING
        return state.task_id

    async def wait_exited(self, task_id: TaskId, within: float = 15.0) -> TaskState:
        async def exited() -> TaskState | None:
            state = await self.runtime.inspect(task_id)
            return state if state is not None and state.status is TaskStatus.EXITED else None

        return await poll(exited, within)

    async def clean_up(self) -> None:
        """Remove what the test left: tasks, then volumes and networks with its label."""
        for state in await self.runtime.list_tasks(self.labels):
            await self.runtime.remove(state.task_id)
        await self.runtime.remove_volumes(self.labels)
        await self.runtime.remove_networks(self.labels)
        if isinstance(self.runtime, KubernetesRuntime):
            await self.runtime.remove_namespace(self.runtime.namespace)


def lines(text: str) -> list[str]:
    """A terminal's output as lines, without carriage returns or surrounding blanks."""
    return [line.strip() for line in text.replace("\r", "\n").split("\n")]
