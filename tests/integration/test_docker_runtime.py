"""What only the Docker driver does, against the real engine on /var/run/docker.sock: the
limits and hardening it asks the engine for, the kernel's OOM killer, the engine's own
capacity, tenant networks, and an engine that cannot be reached. What every driver promises
is in tests/contract (run against this driver too).

Every test labels its tasks and networks with a unique `berth.test.run` value and removes
them afterwards. Waiting is always polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from berth.runtime.base import (
    LogLine,
    RuntimeUnavailable,
    TaskId,
    TaskSpec,
    TaskStatus,
)
from berth.runtime.docker import DockerRuntime
from berth.runtime.factory import create_runtime
from tests.support.drivers import IMAGE, SOCKET, Env
from tests.support.engine import engine_get

pytestmark = pytest.mark.engine


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    runtime = DockerRuntime(SOCKET)
    test_env = Env(runtime)
    try:
        yield test_env
    finally:
        await test_env.clean_up()
        await runtime.close()


# -- launch, capacity, engine ----------------------------------------------------------------


async def test_launch_asks_the_engine_for_the_limits_and_the_hardening(env: Env) -> None:
    spec = env.spec("web", ["httpd", "-f", "-p", "8080"], ports=(8080,), env={"GREETING": "hi"})
    state = await env.runtime.launch(spec)

    raw = await engine_get(f"/containers/{state.task_id}/json")
    host_config = raw["HostConfig"]
    assert host_config["NanoCpus"] == 500_000_000
    assert host_config["Memory"] == host_config["MemorySwap"] == 64 * 1024 * 1024
    assert host_config["PidsLimit"] == 1024
    assert host_config["SecurityOpt"] == ["no-new-privileges"]
    assert host_config["Privileged"] is False
    assert host_config.get("Init") is True
    assert host_config["LogConfig"]["Type"] == "json-file"
    assert host_config["LogConfig"]["Config"]["max-file"] == "1"
    assert "GREETING=hi" in raw["Config"]["Env"]


async def test_launch_without_details_answers_once_the_engine_started_the_task(
    env: Env,
) -> None:
    spec = env.spec("quick", ["sh", "-c", "exit 5"])
    state = await env.runtime.launch(spec, details=False)
    # Started, but not asked about: an exiting task's inspect would wait for its clean-up.
    assert state.status is TaskStatus.RUNNING
    assert state.started_at is None and state.exit_code is None
    final = await env.wait_exited(state.task_id)
    assert final.exit_code == 5 and final.started_at is not None
    # A task that no longer needs starting is returned as it is, with its details.
    again = await env.runtime.launch(spec, details=False)
    assert again.task_id == state.task_id
    assert again.status is TaskStatus.EXITED and again.exit_code == 5


async def test_memory_limit_kills_a_hungry_task(env: Env) -> None:
    command = ["sh", "-c", 'x=$(head -c 64m /dev/zero | tr "\\0" a); echo ${#x}']
    state = await env.runtime.launch(env.spec("oom", command, memory_mb=16))
    raw = await engine_get(f"/containers/{state.task_id}/json")
    assert raw["HostConfig"]["Memory"] == 16 * 1024 * 1024
    final = await env.wait_exited(state.task_id)
    assert final.oom_killed
    assert final.exit_code == 137


async def test_capacity_is_the_engines_machine(env: Env) -> None:
    """What `capacity` reports is the machine's, cached (the contract tests check that a task
    beyond it is refused)."""
    capacity = await env.runtime.capacity()
    transport = httpx.AsyncHTTPTransport(uds=SOCKET)
    async with httpx.AsyncClient(transport=transport, base_url="http://docker/v1.41") as client:
        info = (await client.get("/info")).json()
    assert (capacity.cpus, capacity.memory_bytes) == (info["NCPU"], info["MemTotal"])
    assert await env.runtime.capacity() is capacity  # cached


async def test_unreachable_engine_raises_runtime_unavailable(tmp_path: Any) -> None:
    path = str(tmp_path / "no-engine.sock")
    runtime = DockerRuntime(path)
    try:
        with pytest.raises(RuntimeUnavailable, match="cannot be reached") as caught:
            await runtime.launch(
                TaskSpec(name="x", image=IMAGE, command=None, env={}, labels={}, cpu=1, memory_mb=8)
            )
        assert path in str(caught.value)
        assert "start" in str(caught.value)
        with pytest.raises(RuntimeUnavailable):
            await runtime.ping()
        with pytest.raises(RuntimeUnavailable):
            await runtime.capacity()
        with pytest.raises(RuntimeUnavailable):
            await runtime.list_tasks({})
        with pytest.raises(RuntimeUnavailable):
            await collect_logs_from(runtime, TaskId("x"))
    finally:
        await runtime.close()


async def collect_logs_from(runtime: DockerRuntime, task_id: TaskId) -> list[LogLine]:
    async with contextlib.aclosing(runtime.logs(task_id, follow=False)) as lines:
        return [line async for line in lines]


async def test_factory_builds_a_working_driver() -> None:
    runtime = create_runtime(f"unix://{SOCKET}")
    try:
        await runtime.ping()
    finally:
        await runtime.close()
    with pytest.raises(ValueError, match="unsupported"):
        create_runtime("tcp://127.0.0.1:2375")


# -- stop -------------------------------------------------------------------------------------


async def test_stop_kills_a_task_that_ignores_sigterm_after_the_grace(env: Env) -> None:
    command = ["sh", "-c", "trap '' TERM; sleep 100"]
    state = await env.runtime.launch(env.spec("stubborn", command))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await env.runtime.stop(state.task_id, grace_seconds=1)
    elapsed = loop.time() - started
    assert 0.9 <= elapsed < 10
    stopped = await env.runtime.inspect(state.task_id)
    assert stopped is not None and stopped.status is TaskStatus.EXITED
    assert stopped.exit_code == 137


# -- networks ---------------------------------------------------------------------------------


async def test_tenant_network_is_created_on_first_use(env: Env) -> None:
    network = f"berth-test-{env.run}-net"
    spec = env.spec("net1", ["sleep", "100"], network=network, network_labels=env.labels)
    first = await env.runtime.launch(spec)
    second = await env.runtime.launch(
        env.spec("net2", ["sleep", "100"], network=network, network_labels=env.labels)
    )

    info = await engine_get(f"/networks/{network}")
    assert info["Driver"] == "bridge"
    assert info["Labels"] == env.labels
    for state in (first, second):
        raw = await engine_get(f"/containers/{state.task_id}/json")
        assert network in raw["NetworkSettings"]["Networks"]

    # Still in use: kept, silently.
    await env.runtime.remove_networks(env.labels)
    assert (await engine_get(f"/networks/{network}"))["Name"] == network

    for state in (first, second):
        await env.runtime.remove(state.task_id)
    await env.runtime.remove_networks(env.labels)
    remaining = await engine_get("/networks")
    assert network not in {n["Name"] for n in remaining}
    await env.runtime.remove_networks(env.labels)
