"""Commands in running tasks (`exec`, `open_terminal`) against the real engine.

Every test launches its own task, labelled with a unique run id, and removes it afterwards.
Waiting is polling or reading with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from berth.runtime.base import (
    CommandNotFound,
    ExecSpec,
    InteractiveSession,
    RuntimeDriverError,
    TaskId,
    TaskNotFound,
    TaskStatus,
)
from berth.runtime.docker import DockerRuntime
from tests.integration.test_docker_runtime import SOCKET, Env, engine_get, poll

pytestmark = pytest.mark.engine

NOSH_IMAGE = "berth-test/nosh:latest"


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


async def running_task(env: Env, suffix: str, command: list[str] | None = None) -> TaskId:
    state = await env.runtime.launch(env.spec(suffix, command or ["sleep", "300"]))
    assert state.status is TaskStatus.RUNNING
    return state.task_id


async def read_until(
    session: InteractiveSession, seen: Callable[[str], bool], within: float = 10.0
) -> str:
    """Read the terminal until `seen(all output so far)`; fail the test at the deadline."""
    output = b""
    try:
        async with asyncio.timeout(within):
            while not seen(output.decode(errors="replace")):
                chunk = await session.read()
                if not chunk:
                    break
                output += chunk
    except TimeoutError:
        pass
    text = output.decode(errors="replace")
    if not seen(text):
        pytest.fail(f"terminal output never matched within {within}s: {text!r}")
    return text


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r", "\n").split("\n")]


# -- exec -------------------------------------------------------------------------------------


async def test_exit_codes_and_separate_streams(env: Env) -> None:
    task = await running_task(env, "codes")
    ok = await env.runtime.exec(task, ExecSpec(argv=["true"]))
    assert ok.exit_code == 0 and not ok.timed_out
    assert (ok.stdout, ok.stderr) == (b"", b"")

    script = "echo out; echo err >&2; printf more; exit 3"
    result = await env.runtime.exec(task, ExecSpec(argv=["sh", "-c", script]))
    assert result.exit_code == 3
    assert result.stdout == b"out\nmore"
    assert result.stderr == b"err\n"
    assert not (result.stdout_truncated or result.stderr_truncated or result.timed_out)


async def test_stdin_and_env_reach_the_command(env: Env) -> None:
    task = await running_task(env, "stdin")
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
    task = await running_task(env, "many")
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


async def test_output_beyond_the_limit_is_dropped_and_flagged(env: Env) -> None:
    task = await running_task(env, "trunc")
    script = "head -c 100000 /dev/zero | tr '\\0' a; head -c 10 /dev/zero | tr '\\0' b >&2"
    result = await env.runtime.exec(
        task, ExecSpec(argv=["sh", "-c", script], max_output_bytes=1000)
    )
    assert result.exit_code == 0
    assert result.stdout == b"a" * 1000 and result.stdout_truncated
    assert result.stderr == b"b" * 10 and not result.stderr_truncated


async def processes(env: Env, task: TaskId) -> str:
    listed = await env.runtime.exec(task, ExecSpec(argv=["ps", "-o", "args"]))
    return listed.stdout.decode()


async def test_timeout_kills_the_command_and_its_children_not_the_task(env: Env) -> None:
    task = await running_task(env, "timeout")
    loop = asyncio.get_running_loop()
    started = loop.time()
    # The shell waits on a child that would keep the output open if only the shell died.
    script = "echo before; sleep 100; echo after"
    result = await env.runtime.exec(task, ExecSpec(argv=["sh", "-c", script], timeout_seconds=1))
    elapsed = loop.time() - started
    assert result.timed_out
    assert 0.9 <= elapsed < 3
    assert result.exit_code == 137
    assert result.stdout == b"before\n"

    assert "sleep 100" not in await processes(env, task)
    state = await env.runtime.inspect(task)
    assert state is not None and state.status is TaskStatus.RUNNING


async def test_a_cancelled_exec_does_not_leave_its_command_running(env: Env) -> None:
    task = await running_task(env, "cancel")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(env.runtime.exec(task, ExecSpec(argv=["sleep", "101"])), 0.5)

    async def gone() -> bool | None:
        return True if "sleep 101" not in await processes(env, task) else None

    await poll(gone, within=5)


async def test_exec_in_a_stopped_or_missing_task_raises_task_not_found(env: Env) -> None:
    task = await running_task(env, "stopped")
    await env.runtime.stop(task, grace_seconds=0)
    with pytest.raises(TaskNotFound, match="is not running"):
        await env.runtime.exec(task, ExecSpec(argv=["true"]))
    with pytest.raises(TaskNotFound, match="is not running"):
        await env.runtime.open_terminal(task, ["sh"], cols=80, rows=24)
    missing = TaskId(f"berth-test-{env.run}-nothing")
    with pytest.raises(TaskNotFound):
        await env.runtime.exec(missing, ExecSpec(argv=["true"]))


async def test_a_missing_program_is_not_an_exit_code(env: Env) -> None:
    task = await running_task(env, "noprog")
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


async def test_a_program_that_cannot_run_exits_126_with_the_reason(env: Env) -> None:
    task = await running_task(env, "noexec")
    result = await env.runtime.exec(task, ExecSpec(argv=["/etc/passwd"]))
    assert result.exit_code == 126
    assert result.stdout == b""
    assert b"permission denied" in result.stderr


@pytest.fixture(scope="module")
def nosh_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image holding nothing but a static busybox at /bin/busybox (so no /bin/sh)."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker CLI is needed to build the test image")
    present = subprocess.run(
        [docker, "image", "inspect", NOSH_IMAGE], capture_output=True, check=False
    )
    if present.returncode != 0:
        busybox = Path("/bin/busybox")
        if not busybox.exists():
            pytest.skip("a static busybox at /bin/busybox is needed to build the test image")
        archive = tmp_path_factory.mktemp("nosh") / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(busybox, arcname="bin/busybox")
        subprocess.run(
            [docker, "import", "-c", "ENV PATH=/bin", str(archive), NOSH_IMAGE],
            capture_output=True,
            check=True,
        )
    return NOSH_IMAGE


async def test_an_image_without_a_shell(env: Env, nosh_image: str) -> None:
    spec = env.spec("nosh", ["/bin/busybox", "sleep", "300"], image=nosh_image)
    task = (await env.runtime.launch(spec)).task_id
    with pytest.raises(CommandNotFound, match="'/bin/sh' was not found"):
        await env.runtime.exec(task, ExecSpec(argv=["/bin/sh", "-c", "echo hi"]))
    with pytest.raises(CommandNotFound, match="'/bin/sh' was not found"):
        await env.runtime.open_terminal(task, ["/bin/sh"], cols=80, rows=24)
    works = await env.runtime.exec(task, ExecSpec(argv=["/bin/busybox", "echo", "hi"]))
    assert (works.exit_code, works.stdout) == (0, b"hi\n")


# -- terminals --------------------------------------------------------------------------------


async def test_terminal_session(env: Env) -> None:
    task = await running_task(env, "term")
    session = await env.runtime.open_terminal(task, ["sh"], cols=80, rows=24)
    try:
        # Like on any terminal, what is typed before the shell is ready may be dropped.
        await read_until(session, lambda text: "# " in text)
        await session.write(b"echo $TERM; stty size\n")
        await read_until(session, lambda text: {"xterm-256color", "24 80"} <= set(lines(text)))

        await session.write(b"echo hello\n")
        await read_until(session, lambda text: "hello" in lines(text))

        await session.resize(cols=120, rows=40)
        await session.write(b"stty size\n")
        await read_until(session, lambda text: "40 120" in lines(text))

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


async def test_closing_a_terminal_kills_its_command_and_jobs(env: Env) -> None:
    task = await running_task(env, "termkill")
    session = await env.runtime.open_terminal(task, ["sh"], cols=80, rows=24)
    exec_id = getattr(session, "exec_id", None)
    assert isinstance(exec_id, str)
    await read_until(session, lambda text: "# " in text)
    await session.write(b"sleep 100 & sleep 200\n")

    async def both_run() -> bool | None:
        listed = await processes(env, task)
        return True if "sleep 100" in listed and "sleep 200" in listed else None

    await poll(both_run, within=5)
    await session.close()

    async def ended() -> int | None:
        info = await engine_get(f"/exec/{exec_id}/json")
        return None if info["Running"] else int(info["ExitCode"])

    assert await poll(ended, within=5) == 137
    listed = await processes(env, task)
    assert "sleep 100" not in listed and "sleep 200" not in listed
    await session.close()


async def test_terminal_with_a_missing_program(env: Env) -> None:
    task = await running_task(env, "termmissing")
    with pytest.raises(CommandNotFound, match="'/bin/bash' was not found"):
        await env.runtime.open_terminal(task, ["/bin/bash"], cols=80, rows=24)


async def test_terminal_of_a_command_that_ends_at_once(env: Env) -> None:
    task = await running_task(env, "termquick")
    session = await env.runtime.open_terminal(
        task, ["sh", "-c", "echo bye; exit 4"], cols=80, rows=24
    )
    try:
        await read_until(session, lambda text: "bye" in lines(text))
        assert await asyncio.wait_for(session.wait(), 10) == 4
    finally:
        await session.close()
