"""`open_process` (streamed stdin, no terminal) and `open_port` (TCP from inside the task's
own network) of the Docker driver, against the real engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from berth.runtime.base import CommandNotFound, PortUnreachable, TaskNotFound
from berth.runtime.docker import DockerRuntime
from tests.integration.test_docker_exec import running_task
from tests.integration.test_docker_runtime import SOCKET, Env

pytestmark = pytest.mark.engine


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    runtime = DockerRuntime(SOCKET)
    test_env = Env(runtime)
    try:
        yield test_env
    finally:
        for state in await runtime.list_tasks(test_env.labels):
            await runtime.remove(state.task_id)
        await runtime.close()


KEEP_ALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]


async def test_a_process_streams_stdin_and_keeps_its_streams_apart(env: Env) -> None:
    task = await running_task(env, "proc", KEEP_ALIVE)
    process = await env.runtime.open_process(
        task,
        ["/bin/sh", "-c", 'while read -r line; do echo "out:$line"; echo err >&2; done; exit 6'],
    )
    try:
        await process.write(b"one\n")
        seen: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        async with asyncio.timeout(10):
            while b"out:one\n" not in seen["stdout"]:  # Answered before stdin ended.
                stream, data = await process.read()
                assert data
                seen[stream] += data
            await process.write(b"two\n")
            await process.close_stdin()
            while True:
                stream, data = await process.read()
                if not data:
                    break
                seen[stream] += data
            assert await process.wait() == 6
        assert seen == {"stdout": b"out:one\nout:two\n", "stderr": b"err\nerr\n"}
    finally:
        await process.close()


async def test_a_process_that_cannot_start(env: Env) -> None:
    task = await running_task(env, "noproc", KEEP_ALIVE)
    with pytest.raises(CommandNotFound):
        await env.runtime.open_process(task, ["/no/such/program"])
    await env.runtime.stop(task, grace_seconds=1)
    with pytest.raises(TaskNotFound):
        await env.runtime.open_process(task, ["/bin/sh", "-c", "true"])


async def test_open_port_reaches_a_server_on_the_tasks_own_loopback(env: Env) -> None:
    task = await running_task(
        env,
        "port",
        ["/bin/sh", "-c", "echo page > /tmp/index.html; exec httpd -f -p 127.0.0.1:9000 -h /tmp"],
    )

    async def fetch() -> bytes:
        reader, writer = await asyncio.open_connection(sock=await env.runtime.open_port(task, 9000))
        try:
            writer.write(b"GET /index.html HTTP/1.0\r\n\r\n")
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()

    async with asyncio.timeout(15):
        while True:  # Until httpd listens.
            try:
                await fetch()
                break
            except PortUnreachable:
                await asyncio.sleep(0.05)
        for response in await asyncio.gather(*(fetch() for _ in range(5))):
            assert response.startswith(b"HTTP/1.") and response.endswith(b"\r\n\r\npage\n")

    with pytest.raises(PortUnreachable, match="nothing accepts connections on port 9001"):
        await env.runtime.open_port(task, 9001)
    with pytest.raises(PortUnreachable):
        await env.runtime.open_port(task, 70000)
    await env.runtime.stop(task, grace_seconds=0)
    with pytest.raises(TaskNotFound):
        await env.runtime.open_port(task, 9000)
