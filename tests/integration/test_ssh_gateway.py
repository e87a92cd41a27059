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
import re
import secrets
import select
import struct
import subprocess
import termios
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from berth.domain.events import Event, EventBus
from berth.gateway.ssh.access import SeveralTargets, SshTarget, parse_ssh_username
from berth.gateway.ssh.connection import CHOICE_SECONDS
from berth.gateway.ssh.gateway import SshGateway
from berth.gateway.ssh.limits import SshLimits
from berth.runtime.base import ExecSpec, TaskId, TaskSpec, TaskStatus
from berth.runtime.docker import DockerRuntime
from berth.testing.server import free_port
from berth.testing.waiting import poll
from tests.support.drivers import IMAGE, RUN_LABEL, SOCKET
from tests.support.streams import read_fd_until

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
    """Grants `key` for user names that name `container` (as root or `<user>.`), and for
    `root` (or answers `several` for it, when set)."""

    def __init__(self, container: str, task_id: TaskId, key: str) -> None:
        self.container = container
        self.task_id = task_id
        self.key = key
        self.enabled = True
        self.several: SeveralTargets | None = None
        self.rechecks = 0

    async def authorize(self, username: str, public_key_openssh: str) -> SshTarget | None:
        login = parse_ssh_username(username)
        if login is None or login.container_id != self.container or public_key_openssh != self.key:
            return None
        return SshTarget(self.container, self.task_id, login.login_user)

    async def authorize_key(self, public_key_openssh: str) -> SshTarget | SeveralTargets | None:
        if public_key_openssh != self.key:
            return None
        return self.several or SshTarget(self.container, self.task_id, "root")

    async def recheck(self, target: SshTarget) -> bool:
        self.rechecks += 1
        return self.enabled

    async def wake(self, target: SshTarget) -> None:
        """Nothing to resume: these tasks are never paused."""


@dataclass
class Box:
    """A running task, an SSH gateway in front of it, and what a client needs."""

    runtime: DockerRuntime
    name: str
    task_id: TaskId
    authorizer: KeyAuthorizer
    gateway: SshGateway
    bus: EventBus
    key: Path
    known_hosts: Path
    tmp: Path

    def ssh_args(
        self,
        *args: str,
        user: str | None = None,
        key: Path | None = None,
        source: str = "127.0.0.1",
    ) -> list[str]:
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            str(self.gateway.port),
            "-b",
            source,
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
        self,
        *args: str,
        stdin: bytes = b"",
        user: str | None = None,
        key: Path | None = None,
        source: str = "127.0.0.1",
    ) -> tuple[int, str, str]:
        """Run `ssh [options] user@host COMMAND` (the command last): (status, stdout, stderr).

        `source` is the client address (any of 127.0.0.0/8 reaches the gateway)."""
        process = await asyncio.create_subprocess_exec(
            *self.ssh_args(*args, user=user, key=key, source=source),
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
        bus = EventBus()
        gateway = SshGateway(
            host="127.0.0.1",
            port=0,
            host_key_path=tmp_path / "gateway" / "host_key",
            authorizer=authorizer,
            runtime=runtime,
            events=bus,
        )
        await gateway.start()
        yield Box(
            runtime,
            name,
            state.task_id,
            authorizer,
            gateway,
            bus,
            key,
            tmp_path / "known",
            tmp_path,
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


STTY_SIZE = re.compile(rb"\r\n(\d+ \d+)\r\n")
"""`stty size`'s answer in a terminal's output."""


def drive_terminal(argv: list[str]) -> tuple[int, str]:
    """Run `argv` (ssh -tt) on a pseudo-terminal, type into it: (exit status, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # The child: become ssh on the pseudo-terminal.
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    output = b""

    def read_until(marker: bytes) -> None:
        nonlocal output
        _, output = read_fd_until(fd, lambda out: marker in out, seen=output, timeout=SSH_TIMEOUT)

    try:
        os.write(fd, b"echo hello-$((6*7))\n")
        read_until(b"hello-42")
        # A window change on our side reaches the shell in the container.
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
        # ssh sends the window change when its loop sees SIGWINCH, which may be after it
        # forwarded what was typed next: ask again until the shell reports the new size.
        deadline = time.monotonic() + SSH_TIMEOUT
        while True:
            asked = len(output)
            os.write(fd, b"stty size\n")
            size, output = read_fd_until(
                fd,
                lambda out, asked=asked: (found := STTY_SIZE.search(out, asked)) and found[1],
                seen=output,
                timeout=SSH_TIMEOUT,
            )
            if size == b"33 111":
                break
            assert time.monotonic() < deadline, f"the size stayed {size!r}; output: {output!r}"
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


# -- root@ any host: the key names the container ----------------------------------------------


async def test_root_logs_in_to_the_one_container_the_key_opens(box: Box) -> None:
    status, out, err = await box.ssh("hostname", user="root")
    assert (status, out) == (0, await box.run("hostname")), err

    other, _ = make_key(box.tmp, "other")
    status, out, err = await box.ssh("hostname", user="root", key=other)
    assert status == 255 and out == "" and "Permission denied" in err


async def test_root_with_a_key_that_opens_several_containers_is_shown_the_choices(box: Box) -> None:
    box.authorizer.several = SeveralTargets(("ssh -p 2222 aaa@box", "ssh -p 2222 bbb@box"))
    status, out, err = await box.ssh("echo never", user="root")
    assert (status, out) == (255, "")
    assert "several dev boxes" in err and "\n  ssh -p 2222 aaa@box\n  ssh -p 2222 bbb@box\n" in err

    argv = box.ssh_args("-tt", "", user="root")[:-1]  # A login shell on a terminal: the same.
    shell = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, err_bytes = await asyncio.wait_for(shell.communicate(), SSH_TIMEOUT)
    assert shell.returncode == 255 and b"  ssh -p 2222 bbb@box\r\n" in err_bytes

    # No session (`ssh -N`): disconnected after a few seconds, with the choices on one line.
    argv = box.ssh_args("-N", "", user="root")[:-1]
    started = time.monotonic()
    idle = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, err_bytes = await asyncio.wait_for(idle.communicate(), CHOICE_SECONDS + SSH_TIMEOUT)
    assert idle.returncode == 255 and time.monotonic() - started >= CHOICE_SECONDS
    assert b"want: ssh -p 2222 aaa@box | ssh -p 2222 bbb@box" in err_bytes


# -- revoked access cuts open sessions --------------------------------------------------------

REVOKE_DEADLINE = 1.0
REVOKE_SLACK = 0.25


async def open_sessions(box: Box) -> list[asyncio.subprocess.Process]:
    """A command, a login shell on a terminal and a `-L` forward, each shown to work."""
    await box.run(
        "mkdir -p /tmp/www && echo berth-page > /tmp/www/index.html && "
        "httpd -p 127.0.0.1:8080 -h /tmp/www"
    )
    spawn = asyncio.create_subprocess_exec
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    command = await spawn(*box.ssh_args("echo up-$((6*7)); exec sleep 30"), **pipes)
    shell = await spawn(*box.ssh_args("-tt", "")[:-1], **pipes)
    local = free_port()
    forward = await spawn(
        *box.ssh_args("-N", "-L", f"127.0.0.1:{local}:localhost:8080", "")[:-1], **pipes
    )
    assert command.stdout is not None and shell.stdout is not None and shell.stdin is not None
    await asyncio.wait_for(command.stdout.readuntil(b"up-42"), SSH_TIMEOUT)
    shell.stdin.write(b"echo up-$((6*7))\n")
    await asyncio.wait_for(shell.stdout.readuntil(b"up-42"), SSH_TIMEOUT)

    async def page() -> str | None:
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"http://127.0.0.1:{local}/", timeout=5)).text
        except httpx.TransportError:
            return None

    assert await poll(page, SSH_TIMEOUT) == "berth-page\n"
    return [command, shell, forward]


async def test_an_event_about_the_container_cuts_its_logins_that_lost_access(box: Box) -> None:
    sessions = await open_sessions(box)
    try:
        # An event while access holds: each login is rechecked, none is cut.
        before = box.authorizer.rechecks
        box.bus.publish(Event("workload.status", workload_id=box.name))
        await poll(lambda: _true(box.authorizer.rechecks == before + 3), 5)
        assert all(session.returncode is None for session in sessions)

        box.authorizer.enabled = False
        before = box.authorizer.rechecks
        box.bus.publish(Event("workload.changed", workload_id="another-container"))
        started = time.monotonic()
        box.bus.publish(Event("container.ssh", workload_id=box.name))
        await asyncio.wait_for(
            asyncio.gather(*(session.wait() for session in sessions)),
            REVOKE_DEADLINE + REVOKE_SLACK,
        )
        elapsed = time.monotonic() - started
    finally:
        for session in sessions:
            if session.returncode is None:
                session.kill()
        errors = [(await session.communicate())[1].decode() for session in sessions]
    assert elapsed < REVOKE_DEADLINE, elapsed
    assert [session.returncode for session in sessions] == [255, 255, 255]
    assert all(f"access to container {box.name} was revoked" in err for err in errors), errors
    assert box.authorizer.rechecks == before + 3  # Only this container's logins, once each.


async def _true(condition: bool) -> bool | None:
    return True if condition else None


# -- limits per client address ----------------------------------------------------------------


async def restart_with(box: Box, limits: SshLimits) -> None:
    await box.gateway.stop()
    box.gateway = SshGateway(
        host="127.0.0.1",
        port=0,
        host_key_path=box.gateway.host_key_path,
        authorizer=box.authorizer,
        runtime=box.runtime,
        limits=limits,
    )
    await box.gateway.start()


async def all_closed(box: Box) -> None:
    """Until the gateway has seen every connection go (and counted their failures)."""
    await poll(lambda: _true(box.gateway.connection_count == 0), 5)


async def test_connection_attempts_beyond_the_limit_are_refused_per_client_address(
    box: Box,
) -> None:
    await restart_with(box, SshLimits(connections_per_second=0.01, connection_burst=3))
    for _ in range(3):
        assert (await box.ssh("true"))[0] == 0
    status, out, err = await box.ssh("echo hi")
    assert (status, out) == (255, "")
    assert "too many SSH connections from 127.0.0.1; try again in" in err, err
    assert (await box.ssh("echo hi", source="127.0.0.2"))[:2] == (0, "hi\n")


async def test_failed_logins_beyond_the_limit_turn_the_address_away(box: Box) -> None:
    await restart_with(box, SshLimits(failed_logins_per_second=0.01, failed_login_burst=2))
    other, _ = make_key(box.tmp, "other")
    for _ in range(2):
        status, _, err = await box.ssh("true", key=other)
        assert status == 255 and "Permission denied" in err
        await all_closed(box)
    status, out, err = await box.ssh("echo hi")  # The right key, from the address that failed.
    assert (status, out) == (255, "")
    assert "too many failed SSH logins from 127.0.0.1; try again in" in err, err
    assert (await box.ssh("echo hi", source="127.0.0.2"))[:2] == (0, "hi\n")


async def test_a_connection_is_dropped_after_six_refused_keys(box: Box) -> None:
    keys = [make_key(box.tmp, f"wrong{i}")[0] for i in range(7)]
    options = [option for key in keys[1:] for option in ("-i", str(key))]
    status, _, err = await box.ssh(*options, "true", key=keys[0])
    assert status == 255 and "too many authentication failures (6 keys refused)" in err, err
