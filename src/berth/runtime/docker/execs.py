"""Commands inside running tasks for the Docker driver: one-off execs, and the start of
terminals and processes with streamed stdin (`sessions`).

An exec is created with `POST /containers/{id}/exec` and started with `POST /exec/{id}/start`,
which *hijacks* the HTTP connection (see `upgrade`): from then on the socket carries the
command's streams. Without a TTY the engine sends stdout and stderr as multiplexed frames
(see `logs.FrameDemuxer`) and reads raw stdin bytes; half-closing our side is how the engine
learns that stdin ended. With a TTY both directions are raw bytes. The short JSON calls
(create, inspect, resize) go through the driver's `EngineClient` and its error translation;
a timed-out command is killed through /proc (see `procfs.kill_exec_process`).

How a program that does not exist shows up (runc, Docker 20.10): the start is still
upgraded, the engine writes `OCI runtime exec failed: exec failed: ... no such file or
directory` into the stream (on the stdout channel), closes it, and the exec ends with exit
code 126 and `Pid` 0 - it never had a process. A shell script that exits 127 has a `Pid`, so
the two are told apart by that, not by the exit code.

Nothing here keeps state across calls: every exec and terminal has its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from berth.runtime.base import (
    CommandNotFound,
    ExecResult,
    ExecSpec,
    RuntimeDriverError,
    TaskId,
    TaskNotFound,
)
from berth.runtime.docker.client import EngineClient
from berth.runtime.docker.logs import FrameDemuxer
from berth.runtime.docker.mapping import Json, engine_message, path_segment
from berth.runtime.docker.procfs import kill_exec_process
from berth.runtime.docker.sessions import DockerProcess, DockerTerminal, read_result
from berth.runtime.docker.upgrade import READ_SIZE, Connection, UpgradeRefused
from berth.runtime.output_capture import OutputCapture

TERMINAL_ENV = {"TERM": "xterm-256color"}

_CONNECT_TIMEOUT = 5.0
_START_TIMEOUT = 30.0
"""Until the engine answers the start request (it does before the command runs)."""
_STARTUP_TIMEOUT = 15.0
"""Until a terminal's command is seen running (or seen failing to start)."""
_KILL_GRACE = 2.0
"""After killing a command that timed out: time for its last output and exit code."""
_FAILURE_OUTPUT_TIMEOUT = 2.0
_PID_TIMEOUT = 2.0
"""For the process id of a command that is being started (to kill it)."""

_RUNTIME_FAILURE = re.compile(
    r"OCI runtime|exec failed|unable to start container process", re.IGNORECASE
)
"""How the engine words its own failure to start a command (runc, crun, Podman)."""
_MISSING_PROGRAM = re.compile(
    r"no such file or directory|executable file not found|not found in \$PATH", re.IGNORECASE
)

_ENDED = re.compile(r"stopped|not running|no such (exec|process)", re.IGNORECASE)
"""How the engine refuses to resize the terminal of a command that has ended."""


@dataclass(frozen=True)
class ExecInfo:
    """What `GET /exec/{id}/json` says about an exec."""

    running: bool
    exit_code: int | None
    pid: int
    """The process id on the engine's host; 0 until the process exists (for good if the
    engine failed to start it)."""
    container_id: str

    @classmethod
    def from_json(cls, data: Json) -> ExecInfo:
        exit_code = data.get("ExitCode")
        return cls(
            running=bool(data.get("Running")),
            exit_code=exit_code if isinstance(exit_code, int) else None,
            pid=int(data.get("Pid") or 0),
            container_id=str(data.get("ContainerID") or ""),
        )


def _failed_to_start(info: ExecInfo, output: bytes) -> bool:
    """Whether an ended exec never ran its command (the engine's error is in `output`)."""
    if info.running or info.pid != 0:
        return False
    # No exit code at all: the engine refused before even trying (e.g. the task stopped).
    return info.exit_code is None or bool(_RUNTIME_FAILURE.search(_text(output[:4096])))


def _text(output: bytes) -> str:
    return output.decode("utf-8", "replace").strip()


async def _feed_stdin(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write a command's whole stdin, then half-close so the command sees end of input."""
    try:
        if data:
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        pass  # The command ended (or closed stdin) without reading all of it.


class DockerExec:
    """Exec and terminal plumbing over one engine socket, for `DockerRuntime`."""

    def __init__(self, engine: EngineClient) -> None:
        self._engine = engine

    # -- engine calls ----------------------------------------------------------------------

    async def _create(
        self, task_id: TaskId, argv: list[str], env: Mapping[str, str], *, stdin: bool, tty: bool
    ) -> str:
        if not argv:
            raise RuntimeDriverError("a command to run in a task needs a program (argv is empty)")
        body: Json = {
            "AttachStdin": stdin,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": tty,
            "Cmd": list(argv),
            "Env": [f"{key}={value}" for key, value in env.items()],
        }
        response = await self._engine.request(
            "POST", f"/containers/{path_segment(task_id)}/exec", body=body
        )
        if response.status_code in (200, 201):
            return str(response.json()["Id"])
        message = engine_message(response)
        if response.status_code == 404:
            raise TaskNotFound(f"task {task_id} does not exist")
        if response.status_code == 409:
            state = "paused" if "paused" in message.lower() else "not running"
            raise TaskNotFound(f"task {task_id} is {state}; commands run only in running tasks")
        raise RuntimeDriverError(
            f"starting a command in task {task_id} failed: "
            f"engine answered {response.status_code}: {message}"
        )

    async def _start(self, task_id: TaskId, exec_id: str, *, tty: bool) -> Connection:
        """Start the exec on a connection of our own and return it once hijacked."""
        try:
            return await self._engine.upgrade(
                f"/exec/{path_segment(exec_id)}/start",
                {"Detach": False, "Tty": tty},
                connect_timeout=_CONNECT_TIMEOUT,
                answer_timeout=_START_TIMEOUT,
            )
        except UpgradeRefused as refused:
            if refused.status == 404:
                raise TaskNotFound(f"task {task_id} no longer exists") from None
            if refused.status == 409:
                raise TaskNotFound(f"task {task_id} is not running") from None
            raise RuntimeDriverError(
                f"starting a command in task {task_id} failed: {refused}"
            ) from None

    async def inspect(self, exec_id: str) -> ExecInfo | None:
        """The exec's state; None once it is gone (its task was removed)."""
        response = await self._engine.request("GET", f"/exec/{path_segment(exec_id)}/json")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RuntimeDriverError(
                f"inspecting a command failed: engine answered {response.status_code}: "
                f"{engine_message(response)}"
            )
        return ExecInfo.from_json(response.json())

    async def kill(self, exec_id: str) -> bool:
        """Kill the exec's process if it still runs (see `kill_exec_process`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _PID_TIMEOUT
        while True:
            info = await self.inspect(exec_id)
            if info is None or not info.running:
                return False
            if info.pid > 0:  # Reads /proc, which may take a while on a busy host.
                return await asyncio.to_thread(kill_exec_process, info.pid, info.container_id)
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.01)  # Being started: its process id is not known yet.

    async def resize(self, exec_id: str, *, cols: int, rows: int) -> None:
        response = await self._engine.request(
            "POST", f"/exec/{path_segment(exec_id)}/resize", params={"h": rows, "w": cols}
        )
        if response.status_code in (200, 201, 204):
            return
        # Refused because the command has ended: there is no terminal left to resize. The
        # answer says so ("no such exec", "cannot resize a stopped container") well before
        # a busy engine has recorded the exit in the exec's state.
        message = engine_message(response)
        if response.status_code == 404 or _ENDED.search(message):
            return
        info = await self.inspect(exec_id)
        if info is None or not info.running:
            return
        raise RuntimeDriverError(
            f"resizing the terminal failed: engine answered {response.status_code}: {message}"
        )

    async def exit_code(self, exec_id: str) -> int | None:
        """Poll until the exec has ended: its exit code (None if gone or never started)."""
        delay = 0.02
        while True:
            info = await self.inspect(exec_id)
            if info is None:
                return None
            if not info.running and (info.exit_code is not None or info.pid == 0):
                return info.exit_code
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    async def _task_running(self, task_id: TaskId) -> bool:
        response = await self._engine.request("GET", f"/containers/{path_segment(task_id)}/json")
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            return True  # Unknown: do not claim the task stopped.
        return bool((response.json().get("State") or {}).get("Running"))

    async def _wait_exit(self, task_id: TaskId, exec_id: str) -> ExecInfo:
        """Poll until the started exec has ended (its output may close before it exits)."""
        delay = 0.005
        while True:
            info = await self.inspect(exec_id)
            if info is None:
                raise TaskNotFound(f"task {task_id} was removed while the command ran")
            if not info.running and (info.exit_code is not None or info.pid == 0):
                return info
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _start_failure(
        self, task_id: TaskId, argv: list[str], output: bytes
    ) -> RuntimeDriverError | None:
        """The error for an exec that never ran its command.

        None when the engine's own message should be the command's result instead (a
        program that exists but cannot be executed: exit code 126, like a shell reports).
        """
        message = _text(output[:4096])
        if _RUNTIME_FAILURE.search(message) and _MISSING_PROGRAM.search(message):
            return CommandNotFound(f"'{argv[0]}' was not found in the task's image")
        if not await self._task_running(task_id):
            return TaskNotFound(f"task {task_id} is not running")
        if _RUNTIME_FAILURE.search(message):
            return None
        return RuntimeDriverError(
            f"the command could not be started in task {task_id}: {message or 'no detail'}"
        )

    # -- one-off commands ------------------------------------------------------------------

    async def run(self, task_id: TaskId, spec: ExecSpec) -> ExecResult:
        """`Runtime.exec`: run `spec.argv` to completion (or timeout) and collect its output."""
        exec_id = await self._create(
            task_id, spec.argv, spec.env, stdin=spec.stdin is not None, tty=False
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + spec.timeout_seconds
        connection = await self._start(task_id, exec_id, tty=False)
        capture = OutputCapture(spec.max_output_bytes)
        runner = asyncio.create_task(self._run_to_end(task_id, exec_id, connection, spec, capture))
        ended = False
        try:
            done, _ = await asyncio.wait({runner}, timeout=max(0.0, deadline - loop.time()))
            if runner in done:
                info = runner.result()
                ended = True
                return await self._result(task_id, spec, info, capture)
            killed = await self.kill(exec_id)
            ended = True
            # Let the last output and the exit code arrive. Not killed: the command ended by
            # itself at the deadline, or it cannot be killed from here (then it runs on).
            await asyncio.wait({runner}, timeout=_KILL_GRACE if killed else 0.5)
            finished = runner.done() and runner.exception() is None
            if finished and not killed:
                return await self._result(task_id, spec, runner.result(), capture)
            exit_code = runner.result().exit_code if finished else await self._exit_now(exec_id)
            return capture.result(exit_code, timed_out=True)
        finally:
            runner.cancel()
            await asyncio.wait({runner})
            if not runner.cancelled():
                runner.exception()  # Retrieved (or already raised above): never logged.
            if not ended:  # Cancelled or failed midway: do not leave the command running.
                with contextlib.suppress(Exception):
                    await self.kill(exec_id)
            await connection.close()

    async def _run_to_end(
        self,
        task_id: TaskId,
        exec_id: str,
        connection: Connection,
        spec: ExecSpec,
        capture: OutputCapture,
    ) -> ExecInfo:
        feeder = None
        if spec.stdin is not None:
            feeder = asyncio.create_task(_feed_stdin(connection.writer, spec.stdin))
        demuxer = FrameDemuxer()
        try:
            while chunk := await connection.reader.read(READ_SIZE):
                for stream, payload in demuxer.feed(chunk):
                    capture.add(stream, payload)
                    if spec.on_output is not None:
                        await spec.on_output(stream, payload)
        except OSError as exc:
            raise self._engine.unavailable(exc) from exc
        finally:
            if feeder is not None:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder
        return await self._wait_exit(task_id, exec_id)

    async def _exit_now(self, exec_id: str) -> int | None:
        """The exit code if the exec has ended by now, else None."""
        with contextlib.suppress(RuntimeDriverError):
            info = await self.inspect(exec_id)
            if info is not None and not info.running:
                return info.exit_code
        return None

    async def _result(
        self, task_id: TaskId, spec: ExecSpec, info: ExecInfo, capture: OutputCapture
    ) -> ExecResult:
        output = capture.everything()
        if _failed_to_start(info, output):
            error = await self._start_failure(task_id, spec.argv, output)
            if error is not None:
                raise error
            return ExecResult(
                exit_code=info.exit_code if info.exit_code is not None else 126,
                stdout=b"",
                stderr=output,
            )
        return capture.result(info.exit_code)

    # -- terminals -------------------------------------------------------------------------

    async def open_terminal(
        self, task_id: TaskId, argv: list[str], *, cols: int, rows: int
    ) -> DockerTerminal:
        """`Runtime.open_terminal`: returns once the command runs (or has already ended)."""
        exec_id = await self._create(task_id, argv, TERMINAL_ENV, stdin=True, tty=True)
        connection = await self._start(task_id, exec_id, tty=True)
        first = asyncio.create_task(connection.reader.read(READ_SIZE))
        terminal = DockerTerminal(self, exec_id, connection, first=first)
        try:
            info = await self._started(task_id, exec_id, first)
            if info.pid == 0:  # It never got a process: read why, and let the engine settle.
                output = await self._remaining_output(connection, first)
                info = await self._wait_exit(task_id, exec_id)
                terminal = DockerTerminal(self, exec_id, connection, pending=output)
                if _failed_to_start(info, output):
                    error = await self._start_failure(task_id, argv, output)
                    if error is not None:
                        raise error
                return terminal
            await self.resize(exec_id, cols=cols, rows=rows)
            return terminal
        except BaseException:
            with contextlib.suppress(Exception):
                await terminal.close()
            first.cancel()
            await connection.close()
            raise

    # -- processes with streamed stdin -------------------------------------------------------

    async def open_process(self, task_id: TaskId, argv: list[str]) -> DockerProcess:
        """`Runtime.open_process`: returns once the command runs (or has already ended).

        The same start-up checks as a terminal: a program missing from the image raises
        `CommandNotFound` instead of showing up as the engine's message on stdout.
        """
        exec_id = await self._create(task_id, argv, {}, stdin=True, tty=False)
        connection = await self._start(task_id, exec_id, tty=False)
        first = asyncio.create_task(connection.reader.read(READ_SIZE))
        process = DockerProcess(self, exec_id, connection, first=first)
        try:
            info = await self._started(task_id, exec_id, first)
            if info.pid == 0:  # It never got a process: read why, and let the engine settle.
                frames = list(FrameDemuxer().feed(await self._remaining_output(connection, first)))
                output = b"".join(payload for _, payload in frames)
                info = await self._wait_exit(task_id, exec_id)
                process = DockerProcess(self, exec_id, connection, pending=frames)
                if _failed_to_start(info, output):
                    error = await self._start_failure(task_id, argv, output)
                    if error is not None:
                        raise error
            return process
        except BaseException:
            with contextlib.suppress(Exception):
                await process.close()
            first.cancel()
            await connection.close()
            raise

    async def _started(self, task_id: TaskId, exec_id: str, first: asyncio.Task[bytes]) -> ExecInfo:
        """Poll until the command runs, has ended, or the engine wrote into the stream."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STARTUP_TIMEOUT
        delay = 0.005
        while True:
            # `Running` turns true as the engine starts the process, `Pid` is set once the
            # process exists (its first output may come earlier). When the engine fails to
            # start it, `Running` is back to false before the engine writes why into the
            # stream (with an exit code, or none if it refused before trying). The stream is
            # looked at before inspecting, so that the state read is at least as new.
            stream_moved = first.done()
            info = await self.inspect(exec_id)
            if info is None:
                raise TaskNotFound(f"task {task_id} was removed while the command started")
            if info.running and info.pid != 0:
                return info
            if not info.running and (info.exit_code is not None or stream_moved):
                return info
            if loop.time() > deadline:
                raise RuntimeDriverError(
                    f"the command in task {task_id} did not start within {_STARTUP_TIMEOUT:g}s"
                )
            await asyncio.wait({first}, timeout=delay)
            delay = min(delay * 2, 0.1)

    async def _remaining_output(self, connection: Connection, first: asyncio.Task[bytes]) -> bytes:
        """Everything an ended command's stream still carries (bounded in size and time)."""
        output = bytearray(await read_result(first))
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(_FAILURE_OUTPUT_TIMEOUT):
                while len(output) < READ_SIZE and (
                    chunk := await connection.reader.read(READ_SIZE - len(output))
                ):
                    output += chunk
        return bytes(output)
