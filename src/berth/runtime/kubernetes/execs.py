"""Commands in running tasks over the API server's exec subresource (`channels`).

Kubernetes' exec takes no environment and cannot kill what it started, so a command runs
under a short `/bin/sh` prelude: it exports the requested environment, checks that the
program exists (a missing one is `CommandNotFound`, not a shell's 127), prints one marker
line with its process id on stdout, and `exec`s the command in its place. The marker line
(which carries a random token, so no output can imitate it) is taken off the output. The
command is a session leader (the runtime starts each exec in a session of its own), so a
timed-out or abandoned command is killed with its whole process group through a second
exec of `kill`.

An image without `/bin/sh` gets the command without the prelude: no environment (refused
if some is asked for), and a timed-out command cannot be killed (it is left running, its
connection closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Mapping
from typing import Literal

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from berth.runtime.base import (
    CommandNotFound,
    ExecResult,
    ExecSpec,
    RuntimeDriverError,
    TaskId,
    TaskNotFound,
)
from berth.runtime.kubernetes.channels import (
    ERROR,
    EXEC_PROTOCOL,
    STDERR,
    STDIN,
    STDOUT,
    Ending,
    close_frame,
    frame,
    parse_status,
    resize_frame,
    split_frame,
)
from berth.runtime.kubernetes.client import ApiClient, SubresourceRefused
from berth.runtime.kubernetes.mapping import CONTAINER
from berth.runtime.output_capture import OutputCapture

Stream = Literal["stdout", "stderr"]
TERMINAL_ENV = {"TERM": "xterm-256color"}
PRELUDE = (
    'token=$1; shift; while [ "$1" != -- ]; do export "$1"; shift; done; shift; '
    'command -v "$1" >/dev/null 2>&1 || { printf "%s missing\\n" "$token"; exit 127; }; '
    'printf "%s %s\\n" "$token" "$$"; exec "$@"'
)
SHELL = "/bin/sh"
STDIN_CHUNK = 64 * 1024
_START_TIMEOUT = 15.0
_KILL_GRACE = 2.0
_MARKER_LIMIT = 256


class MarkerFilter:
    """Takes the prelude's marker line off the front of stdout: `feed` returns the output
    to pass on; `pid` / `missing` say what the marker said once `done`."""

    def __init__(self, token: str) -> None:
        self.token = token.encode()
        self.done = asyncio.Event()
        self.pid: int | None = None
        self.missing = False
        self._buffer = b""

    def feed(self, data: bytes) -> bytes:
        if self.done.is_set():
            return data
        self._buffer += data
        newline = self._buffer.find(b"\n")
        if newline < 0 and len(self._buffer) < _MARKER_LIMIT:
            return b""
        line, rest = self._buffer[: max(newline, 0)], self._buffer[newline + 1 :]
        self._buffer = b""
        self.done.set()
        word = line.rstrip(b"\r").removeprefix(self.token + b" ")
        if not line.startswith(self.token) or newline < 0:
            return line + b"\n" + rest if newline >= 0 else rest
        if word == b"missing":
            self.missing = True
        elif word.isdigit():
            self.pid = int(word)
        return rest


class ExecChannel:
    """One command's WebSocket: a reader task sorts its messages into output chunks (a
    queue ending with None), the marker, and the ending from the error channel."""

    def __init__(self, ws: ClientConnection, marker: MarkerFilter | None) -> None:
        self.ws = ws
        self.marker = marker
        self.output: asyncio.Queue[tuple[Stream, bytes] | None] = asyncio.Queue()
        self.ending: asyncio.Future[Ending] = asyncio.get_running_loop().create_future()
        self.closed = False
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        ended = "the connection ended"
        try:
            async for message in self.ws:
                parts = split_frame(message)
                if parts is None:
                    continue
                channel, payload = parts
                if channel == STDOUT and self.marker is not None:
                    payload = self.marker.feed(payload)
                if channel in (STDOUT, STDERR) and payload:
                    await self.output.put(("stdout" if channel == STDOUT else "stderr", payload))
                elif channel == ERROR and payload and not self.ending.done():
                    self.ending.set_result(parse_status(payload))
        except (ConnectionClosed, OSError) as exc:
            ended = f"the connection ended ({exc})"
        finally:
            if self.marker is not None:
                self.marker.done.set()
            if not self.ending.done():
                self.ending.set_result(Ending(exit_code=None, failure=ended))
            await self.output.put(None)

    async def send(self, channel: int, data: bytes) -> None:
        if self.closed:
            raise RuntimeDriverError("the command's session is closed")
        try:
            await self.ws.send(frame(channel, data))
        except ConnectionClosed:
            if channel == STDIN:
                return  # The command ended or stopped reading: its input is dropped.
            raise RuntimeDriverError("the command's session has ended") from None

    async def write_stdin(self, data: bytes) -> None:
        for start in range(0, len(data), STDIN_CHUNK):
            await self.send(STDIN, data[start : start + STDIN_CHUNK])

    async def close_stdin(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(close_frame(STDIN))

    async def resize(self, *, cols: int, rows: int) -> None:
        if self.closed:
            raise RuntimeDriverError("the terminal is closed")
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(resize_frame(cols=cols, rows=rows))

    async def close(self) -> None:
        self.closed = True
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class KubernetesExec:
    """Exec, terminals and processes in one pod's task container."""

    def __init__(self, api: ApiClient, task: TaskId, namespace: str, pod: str) -> None:
        self._api = api
        self._task = task
        self._path = f"/api/v1/namespaces/{namespace}/pods/{pod}/exec"

    async def _connect(self, argv: list[str], *, stdin: bool, tty: bool) -> ClientConnection:
        params = [("command", part) for part in argv] + [
            ("container", CONTAINER),
            ("stdin", str(stdin).lower()),
            ("stdout", "true"),
            ("stderr", str(not tty).lower()),
            ("tty", str(tty).lower()),
        ]
        try:
            # The channel's reader moves each message to its own queue as it comes, so the
            # connection never needs to stop reading (see `ApiClient.websocket`).
            ws = await self._api.websocket(self._path, params, [EXEC_PROTOCOL], queue_messages=None)
        except SubresourceRefused as refused:
            # The driver checked that the pod runs: it has ended since.
            raise TaskNotFound(f"task {self._task} is not running ({refused})") from None
        if ws.subprotocol != EXEC_PROTOCOL:
            await ws.close()
            raise RuntimeDriverError(
                f"the API server does not speak {EXEC_PROTOCOL} (Kubernetes 1.30 or later)"
            )
        return ws

    async def start(
        self, argv: list[str], env: Mapping[str, str], *, stdin: bool, tty: bool
    ) -> ExecChannel:
        """The command started under the prelude (or bare, in an image without a shell);
        returns once it runs. Raises `CommandNotFound` / `TaskNotFound`."""
        if not argv:
            raise RuntimeDriverError("a command to run in a task needs a program (argv is empty)")
        token = secrets.token_hex(12)
        wrapped = [SHELL, "-c", PRELUDE, "berth-exec", token]
        wrapped += [f"{key}={value}" for key, value in env.items()] + ["--", *argv]
        marker = MarkerFilter(token)
        channel = ExecChannel(await self._connect(wrapped, stdin=stdin, tty=tty), marker)
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                await marker.done.wait()
            if marker.missing:
                raise CommandNotFound(f"'{argv[0]}' was not found in the task's image")
            if marker.pid is not None:
                return channel
            ending = await channel.ending
            if ending.missing_program and SHELL in (ending.failure or ""):
                await channel.close()
                if env and env.keys() - TERMINAL_ENV.keys():
                    raise CommandNotFound(
                        f"'{SHELL}' was not found in the task's image (needed to set a "
                        "command's environment)"
                    )
                return await self._start_bare(argv, stdin=stdin, tty=tty)
            raise self._failure(ending, argv)
        except TimeoutError:
            await channel.close()
            raise RuntimeDriverError(
                f"the command in task {self._task} did not start within {_START_TIMEOUT:g}s"
            ) from None
        except BaseException:
            await channel.close()
            raise

    async def _start_bare(self, argv: list[str], *, stdin: bool, tty: bool) -> ExecChannel:
        channel = ExecChannel(await self._connect(argv, stdin=stdin, tty=tty), None)
        done, _ = await asyncio.wait({channel.ending}, timeout=0.2)
        if done and channel.ending.result().failure is not None:
            await channel.close()
            raise self._failure(channel.ending.result(), argv)
        return channel

    def _failure(self, ending: Ending, argv: list[str]) -> RuntimeDriverError:
        if ending.missing_program:
            return CommandNotFound(f"'{argv[0]}' was not found in the task's image")
        if ending.not_running:
            return TaskNotFound(f"task {self._task} is not running")
        return RuntimeDriverError(
            f"the command could not be started in task {self._task}: {ending.failure}"
        )

    async def kill(self, channel: ExecChannel) -> bool:
        """Kill the command's process group; False when its process id is not known."""
        pid = channel.marker.pid if channel.marker is not None else None
        if pid is None or channel.ending.done():
            return False
        script = 'kill -KILL -- "-$1" 2>/dev/null || kill -KILL "$1"'
        with contextlib.suppress(RuntimeDriverError):
            ws = await self._connect(
                [SHELL, "-c", script, "kill", str(pid)], stdin=False, tty=False
            )
            killer = ExecChannel(ws, None)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await killer.ending
            await killer.close()
            return True
        return False

    # -- one-off commands ------------------------------------------------------------------

    async def run(self, spec: ExecSpec) -> ExecResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + spec.timeout_seconds
        channel = await self.start(spec.argv, spec.env, stdin=spec.stdin is not None, tty=False)
        capture = OutputCapture(spec.max_output_bytes)
        try:
            feeder = None
            if spec.stdin is not None:
                feeder = asyncio.create_task(_feed(channel, spec.stdin))
            collector = asyncio.create_task(_collect(channel, capture, spec))
            done, _ = await asyncio.wait({collector}, timeout=max(0.0, deadline - loop.time()))
            timed_out = collector not in done
            if timed_out:
                await self.kill(channel)
                await asyncio.wait({collector}, timeout=_KILL_GRACE)
            if feeder is not None:
                feeder.cancel()
            if not collector.done():
                collector.cancel()
            ending = await channel.ending if channel.ending.done() else Ending(None)
            if collector.done() and not collector.cancelled():
                collector.result()
            if ending.exit_code is None and ending.failure and not timed_out:
                raise self._failure(ending, spec.argv)
            return capture.result(ending.exit_code, timed_out=timed_out)
        finally:
            if not channel.ending.done():
                with contextlib.suppress(Exception):
                    await self.kill(channel)
            await channel.close()


async def _feed(channel: ExecChannel, data: bytes) -> None:
    with contextlib.suppress(RuntimeDriverError):
        await channel.write_stdin(data)
        await channel.close_stdin()


async def _collect(channel: ExecChannel, capture: OutputCapture, spec: ExecSpec) -> None:
    while (item := await channel.output.get()) is not None:
        stream, payload = item
        capture.add(stream, payload)
        if spec.on_output is not None:
            await spec.on_output(stream, payload)
    await channel.ending
