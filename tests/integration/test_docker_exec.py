"""What only the Docker driver does with commands in running tasks, against the real engine:
killing a command's children and a cancelled command, programs the kernel refuses, images
without a shell, jobs of a closed terminal. What every driver promises is in tests/contract.

Every test launches its own task, labelled with a unique run id, and removes it afterwards.
Waiting is polling or reading with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from berth.runtime.base import (
    CommandNotFound,
    ExecSpec,
    TaskId,
)
from berth.runtime.docker import DockerRuntime
from berth.testing.waiting import poll
from tests.support.drivers import SOCKET, Env
from tests.support.engine import engine_get
from tests.support.streams import read_session_until

pytestmark = pytest.mark.engine

NOSH_IMAGE = "berth-test/nosh:latest"


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    runtime = DockerRuntime(SOCKET)
    test_env = Env(runtime)
    try:
        yield test_env
    finally:
        await test_env.clean_up()
        await runtime.close()


# -- exec -------------------------------------------------------------------------------------


async def processes(env: Env, task: TaskId) -> str:
    listed = await env.runtime.exec(task, ExecSpec(argv=["ps", "-o", "args"]))
    return listed.stdout.decode()


async def test_a_timeout_kills_the_commands_children_on_time(env: Env) -> None:
    task = await env.running_task("timeout")
    loop = asyncio.get_running_loop()
    started = loop.time()
    # The shell waits on a child that would keep the output open if only the shell died.
    script = "echo before; sleep 100; echo after"
    result = await env.runtime.exec(task, ExecSpec(argv=["sh", "-c", script], timeout_seconds=1))
    elapsed = loop.time() - started
    assert result.timed_out
    assert 0.9 <= elapsed < 3
    assert "sleep 100" not in await processes(env, task)


async def test_a_cancelled_exec_does_not_leave_its_command_running(env: Env) -> None:
    task = await env.running_task("cancel")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(env.runtime.exec(task, ExecSpec(argv=["sleep", "101"])), 0.5)

    async def gone() -> bool | None:
        return True if "sleep 101" not in await processes(env, task) else None

    await poll(gone, within=5)


async def test_a_program_that_cannot_run_exits_126_with_the_reason(env: Env) -> None:
    task = await env.running_task("noexec")
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


async def test_closing_a_terminal_kills_its_command_and_jobs(env: Env) -> None:
    task = await env.running_task("termkill")
    session = await env.runtime.open_terminal(task, ["sh"], cols=80, rows=24)
    exec_id = getattr(session, "exec_id", None)
    assert isinstance(exec_id, str)
    await read_session_until(session, lambda text: "# " in text)
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
