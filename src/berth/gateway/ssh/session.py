"""SSH session channels: a login shell or a command in the container, PTY or not.

Sessions are bridged to commands in the container through the `Runtime` contract, so no sshd
is needed in the image: with a PTY, `open_terminal` (window changes become resizes); without
one, `open_process` with stdin streamed and stdout/stderr kept apart, so pipes, `ssh -T`
shells and tools like rsync or git work. The client gets the command's exit status.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import asyncssh

from berth.domain.shells import LOGIN_SHELL
from berth.gateway.ssh.access import ROOT_USER, SshTarget
from berth.runtime.base import (
    CommandNotFound,
    InteractiveSession,
    ProcessSession,
    RuntimeDriverError,
    TaskNotFound,
)

if TYPE_CHECKING:
    from berth.gateway.ssh.gateway import SshGateway

logger = logging.getLogger(__name__)

_COMMAND_IN_HOME = 'cd "${HOME:-/}" 2>/dev/null || cd /; exec /bin/sh -c "$1"'
"""`ssh host CMD` as root: CMD (passed as "$1", never pasted in) run from the home directory."""

_AS_USER = """\
if ! command -v su >/dev/null 2>&1; then
  echo "berth: cannot log in as '$1': this container has no 'su' command;" \
"log in as root (ssh <container-id>@...) instead" >&2
  exit 1
fi
if [ "$#" -ge 2 ]; then exec su - "$1" -c "$2"; fi
exec su - "$1"
"""
"""A login as a non-root user ("$1"), with a command ("$2") or its login shell, via `su -`."""

DEFAULT_COLS = 80
DEFAULT_ROWS = 24
GATEWAY_FAILURE = 255
"""Exit status when the gateway could not run the command (what `ssh` uses for its own)."""
READ_SIZE = 64 * 1024
HIGH_WATER = 256 * 1024
"""Bytes buffered towards a command or port before the client is asked to pause."""


def session_argv(login_user: str, command: str | None) -> list[str]:
    """The argv for a session: `command` (or the login shell when None) as `login_user`.

    The user name and the command are passed as positional parameters, never pasted into
    a script. `root` means the image's default user (no `su`).
    """
    if login_user == ROOT_USER:
        if command is None:
            return ["/bin/sh", "-c", LOGIN_SHELL]
        return ["/bin/sh", "-c", _COMMAND_IN_HOME, "berth-ssh", command]
    extra = [] if command is None else [command]
    return ["/bin/sh", "-c", _AS_USER, "berth-ssh", login_user, *extra]


class NoticeSession(asyncssh.SSHServerSession[bytes]):
    """A session that only shows `message` (on stderr) and exits 255, whatever it asked for:
    a login that may not run anything but should be told why."""

    def __init__(self, message: str) -> None:
        self._message = message
        self._channel: asyncssh.SSHServerChannel[bytes] | None = None

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._channel = chan

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any
    ) -> bool:
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        return True

    def session_started(self) -> None:
        channel = self._channel
        assert channel is not None
        newline = "\r\n" if channel.get_terminal_type() is not None else "\n"
        with contextlib.suppress(OSError):
            channel.write_stderr(self._message.replace("\n", newline).encode())
            channel.exit(GATEWAY_FAILURE)


class _Inbox:
    """Bytes from the client waiting for the command, with flow control on the channel:
    reading from the client pauses above a high-water mark and resumes once drained."""

    def __init__(self) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._ended = False
        self._ready = asyncio.Event()
        self._channel: asyncssh.SSHServerChannel[bytes] | None = None
        self._paused = False

    def attach(self, channel: asyncssh.SSHServerChannel[bytes]) -> None:
        self._channel = channel

    def put(self, data: bytes) -> None:
        if self._ended or not data:
            return
        self._chunks.append(data)
        self._size += len(data)
        self._ready.set()
        if self._size > HIGH_WATER and not self._paused and self._channel is not None:
            self._paused = True
            self._channel.pause_reading()

    def end(self) -> None:
        self._ended = True
        self._ready.set()

    async def get(self) -> bytes | None:
        """Everything queued (at least one byte), or None after the client's end of input."""
        while not self._chunks:
            if self._ended:
                return None
            self._ready.clear()
            await self._ready.wait()
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        if self._paused and self._channel is not None:
            self._paused = False
            self._channel.resume_reading()
        return data


class SshSession(asyncssh.SSHServerSession[bytes]):
    """A session channel: a login shell or a command in the container, PTY or not."""

    def __init__(self, gateway: SshGateway, target: SshTarget, label: str) -> None:
        self._gateway = gateway
        self._target = target
        self._label = label
        self._channel: asyncssh.SSHServerChannel[bytes] | None = None
        self._inbox = _Inbox()
        self._writable = asyncio.Event()
        self._writable.set()
        self._resized = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- asyncssh callbacks ----------------------------------------------------------------

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._channel = chan
        self._inbox.attach(chan)

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any
    ) -> bool:
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        logger.info("SSH subsystem %r refused (not offered): %s", subsystem, self._label)
        return False

    def session_started(self) -> None:
        self._task = self._gateway.spawn(self._run(), "session")

    def data_received(self, data: bytes, datatype: int | None) -> None:
        self._inbox.put(data)

    def eof_received(self) -> bool:
        self._inbox.end()
        return True  # Half-open: the command's output still flows to the client.

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self._resized.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._writable.set()
        if self._task is not None:
            self._task.cancel()  # Closes the terminal or process: the command is killed.

    # -- running ---------------------------------------------------------------------------

    async def _run(self) -> None:
        channel = self._channel
        assert channel is not None
        command = channel.get_command()
        pty = channel.get_terminal_type() is not None
        argv = session_argv(self._target.login_user, command)
        logger.info(
            "SSH %s%s: %s",
            "shell" if command is None else "command",
            " with a terminal" if pty else "",
            self._label,
        )
        status: int | None = GATEWAY_FAILURE
        try:
            status = await (self._run_terminal(argv) if pty else self._run_process(argv))
        except TaskNotFound:
            self.say(f"berth: container {self._target.container_id} is not running")
        except CommandNotFound:
            self.say("berth: the container's image has no /bin/sh, which SSH needs")
        except RuntimeDriverError as exc:
            self.say(f"berth: {exc}")
        except Exception:
            logger.exception("SSH session failed: %s", self._label)
            self.say("berth: internal error (see the berth server log)")
        with contextlib.suppress(OSError):
            if status is None:
                channel.close()
            else:
                channel.exit(status)

    def say(self, line: str) -> None:
        """Write `line` to the client's stderr, ended as its terminal (if any) expects."""
        channel = self._channel
        if channel is None or self._closed:
            return
        newline = "\r\n" if channel.get_terminal_type() is not None else "\n"
        with contextlib.suppress(OSError):
            channel.write_stderr(f"{line}{newline}".encode())

    async def _send(self, data: bytes, *, stderr: bool = False) -> bool:
        """Write to the client, waiting while its window is full; False once it is gone."""
        while not self._closed and not self._writable.is_set():
            await self._writable.wait()
        channel = self._channel
        if self._closed or channel is None:
            return False
        try:
            if stderr:
                channel.write_stderr(data)
            else:
                channel.write(data)
        except OSError:
            return False
        return True

    def _size(self) -> tuple[int, int]:
        assert self._channel is not None
        cols, rows, _, _ = self._channel.get_terminal_size()
        return cols or DEFAULT_COLS, rows or DEFAULT_ROWS

    async def _run_terminal(self, argv: list[str]) -> int | None:
        self._resized.clear()
        cols, rows = self._size()
        terminal = await self._gateway.runtime.open_terminal(
            self._target.task_id, argv, cols=cols, rows=rows
        )
        helpers = [
            self._gateway.spawn(self._type_into(terminal), "terminal-input"),
            self._gateway.spawn(self._follow_size(terminal), "terminal-resize"),
        ]
        try:
            while data := await terminal.read():
                if not await self._send(data):
                    return None
            return await terminal.wait()
        finally:
            await _end(helpers)
            await terminal.close()

    async def _type_into(self, terminal: InteractiveSession) -> None:
        # The client's end of input is ignored, as sshd does on a terminal: `exit` ends it.
        with contextlib.suppress(RuntimeDriverError):
            while (data := await self._inbox.get()) is not None:
                await terminal.write(data)

    async def _follow_size(self, terminal: InteractiveSession) -> None:
        while True:
            await self._resized.wait()
            self._resized.clear()
            cols, rows = self._size()
            try:
                await terminal.resize(cols=cols, rows=rows)
            except RuntimeDriverError as exc:
                logger.debug("SSH terminal resize failed (%s): %s", exc, self._label)

    async def _run_process(self, argv: list[str]) -> int | None:
        process = await self._gateway.runtime.open_process(self._target.task_id, argv)
        feeder = self._gateway.spawn(self._feed(process), "process-input")
        try:
            while True:
                stream, data = await process.read()
                if not data:
                    break
                if not await self._send(data, stderr=stream == "stderr"):
                    return None
            return await process.wait()
        finally:
            await _end([feeder])
            await process.close()

    async def _feed(self, process: ProcessSession) -> None:
        with contextlib.suppress(RuntimeDriverError):
            while (data := await self._inbox.get()) is not None:
                await process.write(data)
            await process.close_stdin()


async def _end(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel helper tasks and wait until they are done (their errors are logged by spawn)."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
