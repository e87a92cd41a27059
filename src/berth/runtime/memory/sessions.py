"""Commands in the in-memory runtime's tasks: one-off (`exec`), on a terminal, or attached.

Each runs a toy-shell program (`shell`) to its end at once: a command's time passes
in no time, except that a command sleeping longer than its timeout (or for ever) is killed
at the timeout (exit code 137, as a real engine's kill leaves). A terminal or process session
waits instead where its command waits for input (a process's standard input until it is
closed; a terminal's shell for each typed line), or for ever (a server), until it is closed.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass

from berth.runtime.base import ExecResult, ExecSpec, RuntimeDriverError
from berth.runtime.memory.shell import (
    Context,
    Listen,
    Program,
    ReadInput,
    Sleep,
    Stream,
    Write,
    run_script,
)
from berth.runtime.output_capture import OutputCapture

KILLED = 137
"""The exit code of a command killed (timeout, session closed, task ended)."""
PROMPT = b"~ # "


@dataclass(frozen=True)
class ExecReply:
    """A scripted answer to a command (see `MemoryRuntime.exec_handler`)."""

    exit_code: int = 0
    stdout: bytes = b""
    stderr: bytes = b""
    hangs: bool = False
    """The command never ends by itself: it is killed at its timeout."""


async def run_command(program: Program, spec: ExecSpec) -> ExecResult:
    """Run a one-off command to its end (or its timeout) and collect its output."""
    capture = OutputCapture(spec.max_output_bytes)
    slept = 0.0
    reply: bytes | None = None
    while True:
        try:
            effect = program.send(reply)
        except StopIteration as stop:
            return capture.result(stop.value)
        reply = None
        if isinstance(effect, Write):
            capture.add(effect.stream, effect.data)
            if spec.on_output is not None:
                await spec.on_output(effect.stream, effect.data)
        elif isinstance(effect, ReadInput):
            reply = spec.stdin or b""
        elif isinstance(effect, Sleep):
            slept = float("inf") if effect.seconds is None else slept + effect.seconds
            if slept > spec.timeout_seconds:
                program.close()
                return capture.result(KILLED, timed_out=True)
        # A `Listen` of a one-off command ends with it: nothing can connect in no time.


def scripted(reply: ExecReply, spec: ExecSpec) -> ExecResult:
    """A scripted answer as the command's result (its output limited as a real one's)."""
    capture = OutputCapture(spec.max_output_bytes)
    capture.add("stdout", reply.stdout)
    capture.add("stderr", reply.stderr)
    if reply.hangs:
        return capture.result(KILLED, timed_out=True)
    return capture.result(reply.exit_code)


OnEnd = Callable[["CommandSession"], None]
"""Called once when a session's command ends (its task stops tracking it)."""


class CommandSession:
    """What a terminal and a process share: an end, an exit code, and being killed (its
    task keeps the sessions it must kill when it ends)."""

    def __init__(self, on_end: OnEnd) -> None:
        self._on_end = on_end
        self._code: int | None = None
        self._ended = asyncio.Event()
        self._changed = asyncio.Event()
        self._closed = False

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _end(self, code: int | None) -> None:
        if self.ended:
            return
        self._code = code
        self._ended.set()
        self._notify()
        self._on_end(self)

    def kill(self) -> None:
        """The command is killed (its session closed, or its task ended)."""
        self._end(KILLED)

    async def _wait_change(self) -> None:
        await self._changed.wait()

    async def wait(self) -> int | None:
        await self._ended.wait()
        return self._code

    async def close(self) -> None:
        self._closed = True
        self.kill()
        self._notify()


class MemoryProcess(CommandSession):
    """A `ProcessSession`: the command reads its whole standard input once it is closed."""

    def __init__(
        self,
        program: Program,
        *,
        on_listen: Callable[[int, str], None],
        on_end: OnEnd,
    ) -> None:
        super().__init__(on_end)
        self._program = program
        self._on_listen = on_listen
        self._output: collections.deque[tuple[Stream, bytes]] = collections.deque()
        self._stdin = bytearray()
        self._stdin_closed = False
        self._wants_input = False
        self._step(None)

    def _step(self, reply: bytes | None) -> None:
        while not self.ended:
            try:
                effect = self._program.send(reply)
            except StopIteration as stop:
                self._end(stop.value)
                return
            reply = None
            if isinstance(effect, Write):
                if effect.data:
                    self._output.append((effect.stream, effect.data))
                    self._notify()
            elif isinstance(effect, Listen):
                self._on_listen(effect.port, effect.root)
            elif isinstance(effect, ReadInput):
                if not self._stdin_closed:
                    self._wants_input = True
                    return
                reply = bytes(self._stdin)
            elif effect.seconds is None:
                return  # runs until closed
        self._program.close()

    def kill(self) -> None:
        self._program.close()
        super().kill()

    async def read(self) -> tuple[Stream, bytes]:
        while not self._output:
            if self.ended or self._closed:
                return "stdout", b""
            await self._wait_change()
        return self._output.popleft()

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise RuntimeDriverError("the process session is closed")
        if not self._stdin_closed and not self.ended:
            self._stdin += data

    async def close_stdin(self) -> None:
        if self._stdin_closed or self._closed:
            return
        self._stdin_closed = True
        if self._wants_input:
            self._wants_input = False
            self._step(bytes(self._stdin))


class MemoryTerminal(CommandSession):
    """An `InteractiveSession`. A shell (`sh` without `-c`) answers each typed line, echoing
    what is typed as a terminal does; any other command runs at once, and its output is the
    session's. Output lines end in CR LF, as a terminal's do."""

    def __init__(
        self,
        ctx: Context,
        program: Program | None,
        *,
        on_end: OnEnd,
    ) -> None:
        super().__init__(on_end)
        self._ctx = ctx
        self._output = bytearray()
        self._line = bytearray()
        self._blocked = False
        if program is None:
            self._emit(PROMPT)
        else:
            self._run(program)

    def _emit(self, data: bytes) -> None:
        self._output += data
        self._notify()

    def _run(self, program: Program) -> None:
        reply: bytes | None = None
        while True:
            try:
                effect = program.send(reply)
            except StopIteration as stop:
                self._end(stop.value)
                return
            reply = None
            if isinstance(effect, Write):
                self._emit(effect.data.replace(b"\n", b"\r\n"))
            elif isinstance(effect, ReadInput):
                reply = b""  # as if end-of-file were typed at once
            elif isinstance(effect, Sleep) and effect.seconds is None:
                self._blocked = True
                program.close()
                return

    def _run_line(self, line: str) -> None:
        def shell_line() -> Program:
            return (yield from run_script(line, self._ctx))

        reply: bytes | None = None
        program = shell_line()
        while True:
            try:
                effect = program.send(reply)
            except StopIteration:
                break
            reply = None
            if isinstance(effect, Write):
                self._emit(effect.data.replace(b"\n", b"\r\n"))
            elif isinstance(effect, ReadInput):
                reply = b""
            elif isinstance(effect, Sleep) and effect.seconds is None:
                self._blocked = True  # a command that never ends holds the terminal
                program.close()
                return
        if self._ctx.exited:
            self._end(self._ctx.status)
        else:
            self._emit(PROMPT)

    async def read(self) -> bytes:
        while not self._output:
            if self.ended or self._closed:
                return b""
            await self._wait_change()
        data = bytes(self._output)
        self._output.clear()
        return data

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise RuntimeDriverError("the terminal session is closed")
        if self.ended or self._blocked:
            return
        for byte in data:
            char = bytes([byte])
            if char in (b"\r", b"\n"):
                self._emit(b"\r\n")
                line, self._line = self._line.decode(errors="replace"), bytearray()
                self._run_line(line)
                if self.ended or self._blocked:
                    return
            else:
                self._line += char
                self._emit(char)

    async def resize(self, *, cols: int, rows: int) -> None:
        if self._closed:
            raise RuntimeDriverError("the terminal session is closed")
        self._ctx.terminal = (cols, rows)
