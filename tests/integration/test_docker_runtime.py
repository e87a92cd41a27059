"""The Docker driver against the real engine on /var/run/docker.sock.

Every test labels its tasks and networks with a unique `berth.test.run` value and removes
them afterwards. Waiting is always polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from berth.runtime.base import (
    ImageNotFound,
    InvalidTaskSpec,
    LogLine,
    RuntimeUnavailable,
    TaskEvent,
    TaskId,
    TaskNotFound,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from berth.runtime.docker import DockerRuntime
from berth.runtime.factory import create_runtime

pytestmark = pytest.mark.engine

SOCKET = "/var/run/docker.sock"
IMAGE = "berth-test/busybox:latest"
RUN_LABEL = "berth.test.run"

T = TypeVar("T")


class Env:
    """One test's runtime, unique run id and helpers."""

    def __init__(self, runtime: DockerRuntime) -> None:
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

    async def wait_exited(self, task_id: TaskId, within: float = 15.0) -> TaskState:
        async def exited() -> TaskState | None:
            state = await self.runtime.inspect(task_id)
            return state if state is not None and state.status is TaskStatus.EXITED else None

        return await poll(exited, within)


async def poll_until(check: Callable[[], Awaitable[T | None]], within: float) -> T | None:
    """Call `check` until it returns something other than None; None at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await check()
        if result is not None or loop.time() > deadline:
            return result
        await asyncio.sleep(0.05)


async def poll(check: Callable[[], Awaitable[T | None]], within: float = 15.0) -> T:
    """Like `poll_until`, failing the test at the deadline."""
    result = await poll_until(check, within)
    if result is None:
        pytest.fail(f"condition not met within {within}s")
    return result


async def engine_get(path: str) -> Any:
    """Raw engine API, to check what the driver asked the engine for."""
    transport = httpx.AsyncHTTPTransport(uds=SOCKET)
    async with httpx.AsyncClient(transport=transport, base_url="http://docker/v1.41") as client:
        response = await client.get(path)
        response.raise_for_status()
        return response.json()


async def engine_exec(task_id: TaskId, command: list[str]) -> None:
    transport = httpx.AsyncHTTPTransport(uds=SOCKET)
    async with httpx.AsyncClient(transport=transport, base_url="http://docker/v1.41") as client:
        created = await client.post(f"/containers/{task_id}/exec", json={"Cmd": command})
        created.raise_for_status()
        started = await client.post(
            f"/exec/{created.json()['Id']}/start", json={"Detach": True, "Tty": False}
        )
        started.raise_for_status()


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    runtime = DockerRuntime(SOCKET)
    test_env = Env(runtime)
    try:
        yield test_env
    finally:
        for state in await runtime.list_tasks(test_env.labels):
            await runtime.remove(state.task_id)
        await runtime.remove_networks(test_env.labels)
        await runtime.close()


async def collect_logs(env: Env, task_id: TaskId, **kwargs: Any) -> list[LogLine]:
    async with contextlib.aclosing(env.runtime.logs(task_id, **kwargs)) as lines:
        return [line async for line in lines]


# -- launch, inspect, ports -------------------------------------------------------------------


async def test_launch_runs_with_labels_and_loopback_port(env: Env) -> None:
    spec = env.spec("web", ["httpd", "-f", "-p", "8080"], ports=(8080,), env={"GREETING": "hi"})
    state = await env.runtime.launch(spec)

    assert state.status is TaskStatus.RUNNING
    assert state.name == spec.name
    assert state.labels == spec.labels
    assert state.started_at is not None and state.started_at.tzinfo is not None
    assert state.finished_at is None and state.exit_code is None
    host, port = state.ports[8080]
    assert host == "127.0.0.1"

    async def answered() -> int | None:
        async with httpx.AsyncClient() as client:
            try:
                response = await client.get(f"http://127.0.0.1:{port}/", timeout=2)
            except httpx.TransportError:
                return None
            return response.status_code

    assert await poll(answered) in (200, 403, 404)

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


async def test_launch_is_idempotent_by_name(env: Env) -> None:
    spec = env.spec("idem", ["sleep", "100"])
    first = await env.runtime.launch(spec)
    second = await env.runtime.launch(spec)
    assert second.task_id == first.task_id
    assert second.status is TaskStatus.RUNNING
    assert [s.task_id for s in await env.runtime.list_tasks(env.labels)] == [first.task_id]


async def test_concurrent_launches_of_one_name_make_one_task(env: Env) -> None:
    spec = env.spec("race", ["sleep", "100"])
    states = await asyncio.gather(*(env.runtime.launch(spec) for _ in range(3)))
    assert len({s.task_id for s in states}) == 1
    assert len(await env.runtime.list_tasks(env.labels)) == 1


async def test_exit_code_is_recorded(env: Env) -> None:
    state = await env.runtime.launch(env.spec("exit3", ["sh", "-c", "exit 3"]))
    final = await env.wait_exited(state.task_id)
    assert final.exit_code == 3
    assert not final.oom_killed
    assert final.finished_at is not None and final.started_at is not None
    assert final.finished_at >= final.started_at


async def test_memory_limit_kills_a_hungry_task(env: Env) -> None:
    command = ["sh", "-c", 'x=$(head -c 64m /dev/zero | tr "\\0" a); echo ${#x}']
    state = await env.runtime.launch(env.spec("oom", command, memory_mb=16))
    raw = await engine_get(f"/containers/{state.task_id}/json")
    assert raw["HostConfig"]["Memory"] == 16 * 1024 * 1024
    final = await env.wait_exited(state.task_id)
    assert final.oom_killed
    assert final.exit_code == 137


async def test_missing_image_raises_image_not_found(env: Env) -> None:
    image = f"berth-test/missing-{env.run}:latest"
    with pytest.raises(ImageNotFound, match=f"berth-test/missing-{env.run}"):
        await env.runtime.launch(env.spec("noimage", ["true"], image=image))
    with pytest.raises(ImageNotFound):
        await env.runtime.ensure_image(image)
    assert await env.runtime.list_tasks(env.labels) == []


async def test_present_image_needs_no_pull(env: Env) -> None:
    await env.runtime.ensure_image(IMAGE)


async def test_impossible_spec_raises_invalid_task_spec(env: Env) -> None:
    with pytest.raises(InvalidTaskSpec):
        await env.runtime.launch(env.spec("tiny", ["true"], memory_mb=1))
    assert await env.runtime.list_tasks(env.labels) == []


async def test_a_missing_command_exits_127_with_the_init_saying_why(env: Env) -> None:
    # The init (PID 1) execs the command, so a missing binary is an exit code, not a
    # refused start, and its complaint lands in the task's output.
    state = await env.runtime.launch(env.spec("nocmd", ["/bin/no-such-binary"]))
    done = await env.wait_exited(state.task_id)
    assert done.exit_code == 127
    output = [line.message async for line in env.runtime.logs(state.task_id, follow=False)]
    assert any("no-such-binary" in line for line in output)


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


# -- list, stop, remove -----------------------------------------------------------------------


async def test_list_tasks_filters_by_every_label(env: Env) -> None:
    a = await env.runtime.launch(env.spec("a", ["sleep", "100"], labels={**env.labels, "r": "a"}))
    b = await env.runtime.launch(env.spec("b", ["true"], labels={**env.labels, "r": "b"}))
    everything = await env.runtime.list_tasks(env.labels)
    assert {s.task_id for s in everything} == {a.task_id, b.task_id}
    only_a = await env.runtime.list_tasks({**env.labels, "r": "a"})
    assert [s.task_id for s in only_a] == [a.task_id]
    assert only_a[0].status is TaskStatus.RUNNING
    await env.wait_exited(b.task_id)
    (exited,) = await env.runtime.list_tasks({**env.labels, "r": "b"})
    assert exited.status is TaskStatus.EXITED and exited.exit_code == 0
    assert await env.runtime.list_tasks({RUN_LABEL: env.run + "-other"}) == []


async def test_stop_kills_after_grace_and_is_idempotent(env: Env) -> None:
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

    await env.runtime.stop(state.task_id, grace_seconds=1)  # already stopped
    await env.runtime.remove(state.task_id)
    await env.runtime.stop(state.task_id, grace_seconds=1)  # gone


async def test_remove_is_idempotent_and_kills_running_tasks(env: Env) -> None:
    state = await env.runtime.launch(env.spec("rm", ["sleep", "100"]))
    await env.runtime.remove(state.task_id)
    assert await env.runtime.inspect(state.task_id) is None
    await env.runtime.remove(state.task_id)
    assert await env.runtime.list_tasks(env.labels) == []


# -- logs -------------------------------------------------------------------------------------


async def test_logs_split_by_stream_in_order_with_timestamps(env: Env) -> None:
    script = "echo one; sleep 0.05; echo two >&2; sleep 0.05; echo three; printf four"
    state = await env.runtime.launch(env.spec("logs", ["sh", "-c", script]))
    await env.wait_exited(state.task_id)

    lines = await collect_logs(env, state.task_id, follow=False)
    assert [(line.stream, line.message) for line in lines] == [
        ("stdout", "one"),
        ("stderr", "two"),
        ("stdout", "three"),
        ("stdout", "four"),
    ]
    stamps = [line.timestamp for line in lines]
    assert all(stamp.tzinfo is not None for stamp in stamps)
    assert stamps == sorted(stamps)
    assert state.started_at is not None
    assert abs((stamps[0] - state.started_at).total_seconds()) < 10

    since = await collect_logs(env, state.task_id, follow=False, since=lines[2].timestamp)
    assert [line.message for line in since] == ["three", "four"]


async def test_logs_follow_streams_until_the_task_ends(env: Env) -> None:
    script = "echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second"
    state = await env.runtime.launch(env.spec("follow", ["sh", "-c", script]))
    received: list[str] = []
    async with contextlib.aclosing(env.runtime.logs(state.task_id, follow=True)) as lines:
        async for line in lines:
            received.append(line.message)
            if line.message == "first":
                # The task is still blocked: this line arrived while it runs.
                current = await env.runtime.inspect(state.task_id)
                assert current is not None and current.status is TaskStatus.RUNNING
                await engine_exec(state.task_id, ["touch", "/tmp/go"])
    assert received == ["first", "second"]
    final = await env.runtime.inspect(state.task_id)
    assert final is not None and final.status is TaskStatus.EXITED


async def test_logs_of_missing_task_raise_task_not_found(env: Env) -> None:
    with pytest.raises(TaskNotFound):
        await collect_logs(env, TaskId(f"berth-test-{env.run}-nothing"), follow=False)


# -- events -----------------------------------------------------------------------------------


async def test_events_report_a_task_dying(env: Env) -> None:
    events: list[TaskEvent] = []

    async def watch() -> None:
        async with contextlib.aclosing(env.runtime.events(env.labels)) as stream:
            async for event in stream:
                events.append(event)

    watcher = asyncio.create_task(watch())
    try:
        # The subscription opens asynchronously: launch short tasks until one's death is seen.
        attempt = 0

        async def died() -> TaskEvent | None:
            nonlocal attempt
            attempt += 1
            spec = env.spec(f"die{attempt}", ["sh", "-c", "exit 7"])
            state = await env.runtime.launch(spec)
            await env.wait_exited(state.task_id)

            async def seen() -> TaskEvent | None:
                for event in events:
                    if event.task_id == state.task_id and event.action == "die":
                        return event
                if watcher.done():
                    watcher.result()
                return None

            return await poll_until(seen, within=2)

        event = await poll(died, within=20)
        assert event.labels[RUN_LABEL] == env.run
        assert event.labels.get("exitCode") == "7"
        assert all(e.labels.get(RUN_LABEL) == env.run for e in events)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


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
