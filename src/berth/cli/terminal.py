"""`berth compute ssh`: bridge the local terminal and a shell session's WebSocket.

The local terminal is put in raw mode for the session (keys such as Ctrl-C go to the remote
shell) and is ALWAYS restored: on a normal end, on an error, and on SIGTERM, SIGHUP or SIGQUIT
(each raises `SignalExit`, so the restore runs before the process exits with 128 + signal).
Stdin bytes go out as binary frames; binary frames from the server are written to stdout as
they come. With the `berth.shell.v1` subprotocol the window size is sent at the start and on
every SIGWINCH, and the server's final `{"type": "exit", "code": N}` is the exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import termios
import tty
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosedError,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)
from websockets.typing import Subprotocol

from berth.cli.context import CliError, exit_status
from berth.schemas.workloads import ShellSessionOut
from berth.sdk import SHELL_SUBPROTOCOL, shell_stream_url

EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
READ_SIZE = 65536
EOT = b"\x04"
"""Sent when a non-terminal stdin ends, so that the remote shell sees end of input."""
Outgoing = bytes | str


class SignalExit(BaseException):
    """A terminating signal arrived during a session; exit with 128 + `signum`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def terminal_size(fd: int | None = None) -> tuple[int, int]:
    """(cols, rows) of the terminal on `fd` (default stdin, then stdout); 80x24 otherwise,
    clamped to what a shell session accepts."""
    for candidate in (fd,) if fd is not None else (0, 1):
        try:
            size = os.get_terminal_size(candidate)
        except OSError:
            continue
        return max(10, min(size.columns, 1000)), max(5, min(size.lines, 1000))
    return 80, 24


def resize_frame(fd: int) -> str:
    cols, rows = terminal_size(fd) if os.isatty(fd) else terminal_size()
    return json.dumps({"type": "resize", "cols": cols, "rows": rows})


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Raw mode on `fd` if it is a terminal; the previous mode and signal handlers are put
    back on any exit. Terminating signals raise `SignalExit` meanwhile."""
    saved = termios.tcgetattr(fd) if os.isatty(fd) else None
    previous = {sig: signal.getsignal(sig) for sig in EXIT_SIGNALS}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise SignalExit(signum)

    try:
        for sig in EXIT_SIGNALS:
            signal.signal(sig, on_signal)
        if saved is not None:
            tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def run_shell(session: ShellSessionOut, *, stdin_fd: int = 0, stdout_fd: int = 1) -> int:
    """Run the interactive session to its end; the remote shell's exit status.

    Raises `CliError` when the WebSocket is refused or breaks, `SignalExit` on a signal.
    """
    sys.stdout.flush()
    saved = termios.tcgetattr(stdin_fd) if os.isatty(stdin_fd) else None
    try:
        return asyncio.run(_session(shell_stream_url(session), stdin_fd, stdout_fd))
    except InvalidStatus as exc:
        raise CliError(f"the shell session was refused: {_refusal(exc)}") from exc
    except (InvalidHandshake, InvalidURI, OSError, TimeoutError) as exc:
        raise CliError(f"cannot connect to the shell session: {exc}") from exc
    finally:
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)


def _refusal(exc: InvalidStatus) -> str:
    response = exc.response
    try:
        body: Any = json.loads(response.body or b"")
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return f"HTTP {response.status_code}: {body['error']}"
    return f"HTTP {response.status_code}"


async def _session(url: str, stdin_fd: int, stdout_fd: int) -> int:
    async with connect(
        url,
        subprotocols=[Subprotocol(SHELL_SUBPROTOCOL)],
        max_size=None,
        open_timeout=15,
        compression=None,
    ) as ws:
        extended = ws.subprotocol == SHELL_SUBPROTOCOL
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue[Outgoing] = asyncio.Queue()
        with raw_terminal(stdin_fd), _forward_stdin(loop, stdin_fd, outbox.put_nowait):
            if extended:
                outbox.put_nowait(resize_frame(stdin_fd))
                loop.add_signal_handler(
                    signal.SIGWINCH, lambda: outbox.put_nowait(resize_frame(stdin_fd))
                )
            sender = asyncio.create_task(_send(ws, outbox))
            try:
                return await _receive(ws, stdout_fd, extended=extended)
            finally:
                sender.cancel()
                if extended:
                    loop.remove_signal_handler(signal.SIGWINCH)


@contextlib.contextmanager
def _forward_stdin(
    loop: asyncio.AbstractEventLoop, fd: int, put: Callable[[Outgoing], None]
) -> Iterator[None]:
    """Queue stdin's bytes as they arrive; at the end of a non-terminal stdin, queue EOT."""
    interactive = os.isatty(fd)

    def on_readable() -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            put(data)
            return
        loop.remove_reader(fd)
        if not interactive:
            put(EOT)

    try:
        loop.add_reader(fd, on_readable)
    except PermissionError:
        # A regular file cannot be polled: it is all readable now.
        with os.fdopen(os.dup(fd), "rb") as whole:
            put(whole.read())
        put(EOT)
        yield
        return
    try:
        yield
    finally:
        loop.remove_reader(fd)


async def _send(ws: ClientConnection, outbox: asyncio.Queue[Outgoing]) -> None:
    while True:
        await ws.send(await outbox.get())


async def _receive(ws: ClientConnection, stdout_fd: int, *, extended: bool) -> int:
    code: int | None = None
    try:
        async for message in ws:
            if isinstance(message, bytes):
                write_all(stdout_fd, message)
            elif not extended:
                write_all(stdout_fd, message.encode())
            else:
                code = _exit_code(message)
                if code is not None:
                    break
    except ConnectionClosedError as exc:
        if code is None:
            raise CliError(f"the shell connection broke: {exc}") from exc
    if code is not None:
        return exit_status(code, timed_out=False)
    if extended:
        reason = ws.close_reason or f"close code {ws.close_code}"
        raise CliError(f"the shell session ended without an exit status ({reason})")
    return 0


def _exit_code(message: str) -> int | None:
    """The code of an `{"type": "exit", "code": N}` frame; `None` for other text frames."""
    try:
        control = json.loads(message)
    except ValueError:
        return None
    if isinstance(control, dict) and control.get("type") == "exit":
        code = control.get("code")
        return code if isinstance(code, int) else 255
    return None
