"""The SSH gateway against the real engine, driven by the real OpenSSH client.

Each test launches its own busybox task (removed afterwards) and a gateway on a free
loopback port, with a small authorizer that grants one generated key for the user name
that names the task. The `ssh` client runs as a subprocess (never blocking the event loop
that serves it); waiting is always reading or polling with a deadline.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import secrets
import select
import socket
import struct
import subprocess
import termios
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from berth.gateway.ssh import SshGateway
from berth.gateway.ssh_access import SshTarget, parse_ssh_username
from berth.runtime.base import ExecSpec, TaskId, TaskSpec, TaskStatus
from berth.runtime.docker import DockerRuntime
from tests.integration.test_docker_runtime import IMAGE, RUN_LABEL, SOCKET

pytestmark = pytest.mark.engine

KEEP_ALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]
SSH_TIMEOUT = 20.0


def make_key(directory: Path, name: str) -> tuple[Path, str]:
    """A new ed25519 key pair: (private key path, public key as `<type> <base64>`)."""
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True
    )
    public = path.with_name(f"{name}.pub").read_text().split()
    return path, f"{public[0]} {public[1]}"


class KeyAuthorizer:
    """Grants `key` for user names that name `container` (as root or `<user>.`)."""

    def __init__(self, container: str, task_id: TaskId, key: str) -> None:
        self.container = container
        self.task_id = task_id
        self.key = key
        self.enabled = True
        self.rechecks = 0

    async def authorize(self, username: str, public_key_openssh: str) -> SshTarget | None:
        login = parse_ssh_username(username)
        if login is None or login.container_id != self.container or public_key_openssh != self.key:
            return None
        return SshTarget(self.container, self.task_id, login.login_user)

    async def recheck(self, target: SshTarget) -> bool:
        self.rechecks += 1
        return self.enabled


@dataclass
class Box:
    """A running task, an SSH gateway in front of it, and what a client needs."""

    runtime: DockerRuntime
    name: str
    task_id: TaskId
    authorizer: KeyAuthorizer
    gateway: SshGateway
    key: Path
    known_hosts: Path
    tmp: Path

    def ssh_args(self, *args: str, user: str | None = None, key: Path | None = None) -> list[str]:
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            str(self.gateway.port),
            "-i",
            str(key or self.key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "ConnectTimeout=10",
            *args[:-1],
            f"{user or self.name}@127.0.0.1",
            *args[-1:],
        ]

    async def ssh(
        self, *args: str, stdin: bytes = b"", user: str | None = None, key: Path | None = None
    ) -> tuple[int, str, str]:
        """Run `ssh [options] user@host COMMAND` (the command last): (status, stdout, stderr)."""
        process = await asyncio.create_subprocess_exec(
            *self.ssh_args(*args, user=user, key=key),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(stdin), SSH_TIMEOUT)
        assert process.returncode is not None
        return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    async def run(self, script: str) -> str:
        """A command in the task directly (setup, not through SSH)."""
        result = await self.runtime.exec(self.task_id, ExecSpec(argv=["/bin/sh", "-c", script]))
        assert result.exit_code == 0, result
        return result.stdout.decode()


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    runtime = DockerRuntime(SOCKET)
    run = secrets.token_hex(4)
    name = f"berth-test-{run}-ssh"
    gateway: SshGateway | None = None
    try:
        state = await runtime.launch(
            TaskSpec(
                name=name,
                image=IMAGE,
                command=KEEP_ALIVE,
                env={},
                labels={RUN_LABEL: run},
                cpu=0.5,
                memory_mb=64,
            )
        )
        assert state.status is TaskStatus.RUNNING
        key, public = make_key(tmp_path, "client")
        authorizer = KeyAuthorizer(name, state.task_id, public)
        gateway = SshGateway(
            host="127.0.0.1",
            port=0,
            host_key_path=tmp_path / "gateway" / "host_key",
            authorizer=authorizer,
            runtime=runtime,
        )
        await gateway.start()
        yield Box(
            runtime, name, state.task_id, authorizer, gateway, key, tmp_path / "known", tmp_path
        )
    finally:
        if gateway is not None:
            await gateway.stop()
        for task in await runtime.list_tasks({RUN_LABEL: run}):
            await runtime.remove(task.task_id)
        await runtime.close()


# -- commands ---------------------------------------------------------------------------------


async def test_command_output_and_exit_status(box: Box) -> None:
    status, out, err = await box.ssh("echo hi; echo oops >&2; exit 3")
    assert (status, out, err.splitlines()[-1]) == (3, "hi\n", "oops")


async def test_stdin_is_streamed_to_commands_and_to_a_shell_without_terminal(box: Box) -> None:
    status, out, _ = await box.ssh("cat; echo done", stdin=b"data\nmore data\n")
    assert (status, out) == (0, "data\nmore data\ndone\n")

    status, out, _ = await box.ssh("-T", "", stdin=b"echo via-$((40+2)); pwd; exit 5\n")
    assert (status, out) == (5, "via-42\n/root\n")


async def test_a_non_root_login_runs_as_that_user(box: Box) -> None:
    await box.run("echo 'dev:x:1000:1000:dev:/tmp:/bin/sh' >> /etc/passwd")
    status, out, err = await box.ssh("id -u; pwd", user=f"dev.{box.name}")
    assert (status, out) == (0, "1000\n/tmp\n"), err


# -- authentication and access ----------------------------------------------------------------


async def test_wrong_key_or_wrong_container_is_refused(box: Box) -> None:
    other, _ = make_key(box.tmp, "other")
    status, out, err = await box.ssh("echo hi", key=other)
    assert status == 255 and out == "" and "Permission denied" in err

    status, _, err = await box.ssh("echo hi", user="berth-test-nosuchbox")
    assert status == 255 and "Permission denied" in err
    status, _, err = await box.ssh("echo hi", user="not a name")
    assert status == 255 and "Permission denied" in err


async def test_revoked_access_refuses_a_new_session(box: Box) -> None:
    assert (await box.ssh("true"))[0] == 0
    box.authorizer.enabled = False
    status, out, err = await box.ssh("echo hi")
    assert status == 255 and out == ""
    assert "no longer allowed" in err, err


async def test_host_key_is_kept_across_restarts(box: Box) -> None:
    status, _, _ = await box.ssh("true")
    assert status == 0 and box.known_hosts.read_text().strip()
    key_path = box.gateway.host_key_path
    assert key_path.stat().st_mode & 0o777 == 0o600
    port = box.gateway.port

    await box.gateway.stop()
    box.gateway = SshGateway(
        host="127.0.0.1",
        port=port,
        host_key_path=key_path,
        authorizer=box.authorizer,
        runtime=box.runtime,
    )
    await box.gateway.start()
    status, out, err = await box.ssh("-o", "StrictHostKeyChecking=yes", "echo again")
    assert (status, out) == (0, "again\n"), err


# -- interactive terminal ---------------------------------------------------------------------


def drive_terminal(argv: list[str]) -> tuple[int, str]:
    """Run `argv` (ssh -tt) on a pseudo-terminal, type into it: (exit status, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # The child: become ssh on the pseudo-terminal.
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    output = b""

    def read_until(marker: bytes, within: float = SSH_TIMEOUT) -> None:
        nonlocal output
        deadline = time.monotonic() + within
        while marker not in output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{marker!r} not seen; output so far: {output!r}")
            if select.select([fd], [], [], remaining)[0]:
                try:
                    output += os.read(fd, 4096)
                except OSError:  # EIO: ssh ended.
                    raise AssertionError(f"{marker!r} not seen; output: {output!r}") from None

    try:
        os.write(fd, b"echo hello-$((6*7))\n")
        read_until(b"hello-42")
        # A window change on our side reaches the shell in the container.
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
        os.write(fd, b"stty size\n")
        read_until(b"33 111")
        os.write(fd, b"exit 4\n")
        deadline = time.monotonic() + SSH_TIMEOUT
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    if not os.read(fd, 4096):
                        break
                except OSError:
                    break
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), output.decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), output.decode(errors="replace")
    finally:
        os.close(fd)
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


async def test_interactive_shell_on_a_terminal(box: Box) -> None:
    argv = box.ssh_args("-tt", "")[:-1]  # No command: the login shell.
    status, output = await asyncio.to_thread(drive_terminal, argv)
    assert status == 4, output


# -- port forwarding --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_local_port_forward_reaches_the_containers_loopback(box: Box) -> None:
    await box.run(
        "mkdir -p /tmp/www && echo berth-page > /tmp/www/index.html && "
        "httpd -p 127.0.0.1:8080 -h /tmp/www"
    )
    local, refused, elsewhere = free_port(), free_port(), free_port()
    argv = box.ssh_args(
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-L",
        f"127.0.0.1:{local}:localhost:8080",
        "-L",
        f"127.0.0.1:{refused}:localhost:9",
        "-L",
        f"127.0.0.1:{elsewhere}:example.com:80",
        "",
    )[:-1]
    forward = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient() as client:
            deadline = asyncio.get_running_loop().time() + SSH_TIMEOUT
            while True:
                try:
                    response = await client.get(f"http://127.0.0.1:{local}/", timeout=5)
                    break
                except httpx.TransportError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.1)
            assert response.status_code == 200
            assert response.text == "berth-page\n"

            for port in (refused, elsewhere):
                with pytest.raises(httpx.TransportError):
                    await client.get(f"http://127.0.0.1:{port}/", timeout=5)
    finally:
        forward.terminate()
        _, err = await asyncio.wait_for(forward.communicate(), SSH_TIMEOUT)
    messages = err.decode(errors="replace")
    assert "nothing accepts connections on port 9" in messages, messages
    assert "forwards only to ports of the container itself" in messages, messages
