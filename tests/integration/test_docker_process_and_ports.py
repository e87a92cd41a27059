"""What only the Docker driver does with attached processes, against the real engine: input
streamed to a command while it runs, and its answers handed over before its input ends. What
every driver promises of `open_process` and `open_port` is in tests/contract."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from berth.runtime.docker import DockerRuntime
from tests.support.drivers import SOCKET, Env

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


KEEP_ALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]


async def test_a_process_streams_stdin_and_keeps_its_streams_apart(env: Env) -> None:
    task = await env.running_task("proc", KEEP_ALIVE)
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
