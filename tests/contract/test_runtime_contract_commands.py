"""What `berth.runtime.base` promises of every driver for commands in running tasks: `exec`,
terminals, attached processes, and connections to ports inside a task.

What only the Docker driver does (killing a command's children, programs the kernel refuses,
images without a shell, input streamed to a command while it runs) is tested in
tests/integration/test_docker_exec.py and test_docker_process_and_ports.py.
"""

from __future__ import annotations

import asyncio

import pytest

from berth.runtime.base import (
    CommandNotFound,
    ExecSpec,
    PortUnreachable,
    RuntimeDriverError,
    TaskId,
    TaskNotFound,
    TaskStatus,
)
from berth.runtime.kubernetes import KubernetesRuntime
from tests.support.drivers import Env, lines
from tests.support.streams import ask_session_until, read_session_until

# -- exec -------------------------------------------------------------------------------------


async def test_exec_exit_codes_and_separate_streams(env: Env) -> None:
    task = await env.running_task("codes")
    ok = await env.runtime.exec(task, ExecSpec(argv=["true"]))
    assert ok.exit_code == 0 and not ok.timed_out
    assert (ok.stdout, ok.stderr) == (b"", b"")

    script = "echo out; echo err >&2; printf more; exit 3"
    result = await env.runtime.exec(task, ExecSpec(argv=["sh", "-c", script]))
    assert result.exit_code == 3
    assert result.stdout == b"out\nmore"
    assert result.stderr == b"err\n"
    assert not (result.stdout_truncated or result.stderr_truncated or result.timed_out)


async def test_exec_stdin_and_env_reach_the_command(env: Env) -> None:
    task = await env.running_task("stdin")
    data = b"line one\nline two\n" + bytes(range(256)) * 1024  # Binary, 256 KiB.
    piped = await env.runtime.exec(task, ExecSpec(argv=["cat"], stdin=data))
    assert piped.exit_code == 0
    assert piped.stdout == data

    empty = await env.runtime.exec(task, ExecSpec(argv=["cat"], stdin=b""))
    assert (empty.exit_code, empty.stdout) == (0, b"")

    # No stdin at all: the command reads end-of-file at once rather than hanging.
    none = await env.runtime.exec(task, ExecSpec(argv=["cat"], timeout_seconds=5))
    assert (none.exit_code, none.stdout, none.timed_out) == (0, b"", False)

    greeted = await env.runtime.exec(
        task, ExecSpec(argv=["sh", "-c", 'echo "$GREETING"'], env={"GREETING": "hi there"})
    )
    assert greeted.stdout == b"hi there\n"


async def test_concurrent_execs_keep_their_own_output(env: Env) -> None:
    task = await env.running_task("many")
    results = await asyncio.gather(
        *(
            env.runtime.exec(
                task, ExecSpec(argv=["sh", "-c", f"cat; echo {i} >&2; exit {i}"], stdin=b"%d" % i)
            )
            for i in range(8)
        )
    )
    for i, result in enumerate(results):
        assert (result.exit_code, result.stdout, result.stderr) == (i, b"%d" % i, b"%d\n" % i)


async def test_exec_output_beyond_the_limit_is_dropped_and_flagged(env: Env) -> None:
    task = await env.running_task("trunc")
    spec = ExecSpec(
        argv=["sh", "-c", "cat; echo bbbbbbbbb >&2"], stdin=b"a" * 100_000, max_output_bytes=1000
    )
    result = await env.runtime.exec(task, spec)
    assert result.exit_code == 0
    assert result.stdout == b"a" * 1000 and result.stdout_truncated
    assert result.stderr == b"bbbbbbbbb\n" and not result.stderr_truncated


async def test_exec_output_is_handed_over_as_it_comes(env: Env) -> None:
    task = await env.running_task("stream")
    chunks: list[tuple[str, bytes]] = []

    async def on_output(stream: str, chunk: bytes) -> None:
        chunks.append((stream, chunk))

    script = "echo one; echo two >&2"
    result = await env.runtime.exec(task, ExecSpec(argv=["sh", "-c", script], on_output=on_output))
    assert result.stdout == b"one\n" and result.stderr == b"two\n"
    assert b"".join(c for s, c in chunks if s == "stdout") == b"one\n"
    assert b"".join(c for s, c in chunks if s == "stderr") == b"two\n"


async def test_exec_timeout_kills_the_command_not_the_task(env: Env) -> None:
    task = await env.running_task("timeout")
    script = "echo before; sleep 100; echo after"
    result = await env.runtime.exec(task, ExecSpec(argv=["sh", "-c", script], timeout_seconds=1))
    assert result.timed_out
    assert result.exit_code == 137
    assert result.stdout == b"before\n"
    state = await env.runtime.inspect(task)
    assert state is not None and state.status is TaskStatus.RUNNING


async def test_exec_in_a_stopped_or_missing_task_raises_task_not_found(env: Env) -> None:
    task = await env.running_task("stopped")
    await env.runtime.stop(task, grace_seconds=0)
    with pytest.raises(TaskNotFound, match="is not running"):
        await env.runtime.exec(task, ExecSpec(argv=["true"]))
    with pytest.raises(TaskNotFound, match="is not running"):
        await env.runtime.open_terminal(task, ["sh"], cols=80, rows=24)
    missing = TaskId(f"berth-test-{env.run}-nothing")
    with pytest.raises(TaskNotFound):
        await env.runtime.exec(missing, ExecSpec(argv=["true"]))


async def test_a_missing_program_is_not_an_exit_code(env: Env) -> None:
    task = await env.running_task("noprog")
    with pytest.raises(CommandNotFound, match="'/bin/no-such-program' was not found"):
        await env.runtime.exec(task, ExecSpec(argv=["/bin/no-such-program"]))
    with pytest.raises(CommandNotFound, match="'no-such-program' was not found"):
        await env.runtime.exec(task, ExecSpec(argv=["no-such-program", "arg"]))

    # A script exiting 127 is just that, even when it prints what the engine would.
    script = "echo 'OCI runtime exec failed: no such file or directory'; exit 127"
    shell = await env.runtime.exec(task, ExecSpec(argv=["sh", "-c", script]))
    assert shell.exit_code == 127
    assert shell.stdout.startswith(b"OCI runtime exec failed")
    not_found = await env.runtime.exec(task, ExecSpec(argv=["sh", "-c", "no-such-program"]))
    assert not_found.exit_code == 127
    assert b"not found" in not_found.stderr


# -- terminals --------------------------------------------------------------------------------


async def test_terminal_session(env: Env) -> None:
    task = await env.running_task("term")
    session = await env.runtime.open_terminal(task, ["sh"], cols=80, rows=24)
    try:
        # Like on any terminal, what is typed before the shell is ready may be dropped.
        await read_session_until(session, lambda text: "# " in text)
        await session.write(b"echo $TERM; stty size\n")
        await read_session_until(
            session, lambda text: {"xterm-256color", "24 80"} <= set(lines(text))
        )

        await session.write(b"echo hello\n")
        await read_session_until(session, lambda text: "hello" in lines(text))

        await session.resize(cols=120, rows=40)
        if isinstance(env.runtime, KubernetesRuntime):
            # The kubelet may apply the new size after the next input reaches the shell.
            await ask_session_until(session, b"stty size\n", lambda text: "40 120" in lines(text))
        else:  # in effect once `resize` returned
            await session.write(b"stty size\n")
            await read_session_until(session, lambda text: "40 120" in lines(text))

        await session.write(b"exit 5\n")
        assert await asyncio.wait_for(session.wait(), 10) == 5
        # Whatever output is left, then end-of-file.
        async with asyncio.timeout(10):
            while await session.read():
                pass
    finally:
        await session.close()
        await session.close()
    with pytest.raises(RuntimeDriverError):
        await session.write(b"too late\n")
    assert await session.read() == b""


async def test_terminal_with_a_missing_program(env: Env) -> None:
    task = await env.running_task("termmissing")
    with pytest.raises(CommandNotFound, match="'/bin/bash' was not found"):
        await env.runtime.open_terminal(task, ["/bin/bash"], cols=80, rows=24)


async def test_terminal_of_a_command_that_ends_at_once(env: Env) -> None:
    task = await env.running_task("termquick")
    session = await env.runtime.open_terminal(
        task, ["sh", "-c", "echo bye; exit 4"], cols=80, rows=24
    )
    try:
        await read_session_until(session, lambda text: "bye" in lines(text))
        assert await asyncio.wait_for(session.wait(), 10) == 4
    finally:
        await session.close()


# -- attached processes -----------------------------------------------------------------------


async def test_a_process_keeps_its_streams_apart_and_ends_with_its_code(env: Env) -> None:
    task = await env.running_task("proc")
    process = await env.runtime.open_process(task, ["sh", "-c", "cat; echo err >&2; exit 6"])
    try:
        await process.write(b"one\n")
        await process.write(b"two\n")
        await process.close_stdin()
        seen: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        async with asyncio.timeout(10):
            while True:
                stream, data = await process.read()
                if not data:
                    break
                seen[stream] += data
            assert await process.wait() == 6
        assert seen == {"stdout": b"one\ntwo\n", "stderr": b"err\n"}
    finally:
        await process.close()


async def test_a_process_that_cannot_start(env: Env) -> None:
    task = await env.running_task("noproc")
    with pytest.raises(CommandNotFound):
        await env.runtime.open_process(task, ["/no/such/program"])
    await env.runtime.stop(task, grace_seconds=1)
    with pytest.raises(TaskNotFound):
        await env.runtime.open_process(task, ["sh", "-c", "true"])


# -- ports inside a task ----------------------------------------------------------------------


async def test_open_port_reaches_a_server_on_the_tasks_own_loopback(env: Env) -> None:
    script = "echo page > /tmp/index.html; exec httpd -f -p 127.0.0.1:9000 -h /tmp"
    task = await env.running_task("port", ["sh", "-c", script])

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
