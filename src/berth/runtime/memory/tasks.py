"""The in-memory runtime's tasks and volumes: state, output, and a program run lazily.

A running task's program (a toy-shell generator, `shell`) is advanced only when asked
(`MemoryTask.advance(now)`): it runs until it sleeps past `now`, sleeps for ever (a server),
or ends. Its output lines are stamped with the time the program had reached, so a script
that sleeps between two lines stamps them that far apart, on whatever clock drives it.
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from berth.runtime.base import LogLine, TaskId, TaskSpec, TaskState, TaskStatus
from berth.runtime.memory.ports import Connections, PortHandler, http_responder
from berth.runtime.memory.sessions import CommandSession, ExecReply
from berth.runtime.memory.shell import (
    Context,
    Files,
    Listen,
    Program,
    ReadInput,
    Sleep,
    Stream,
    Write,
)

STOPPED = 143
"""The exit code of a task stopped (SIGTERM, which its process does not survive)."""
KILLED = 137
"""The exit code of a task killed (removed while running, out of memory)."""
DEFAULT_MEMORY_USAGE = 4 * 1024 * 1024


@dataclass(frozen=True)
class ExecCall:
    """A command a test's `exec_handler` is asked to answer."""

    task: TaskState
    argv: list[str]
    env: Mapping[str, str]
    stdin: bytes | None


ExecHandler = Callable[[ExecCall], ExecReply | None]
"""Answers a command in a task, or None to leave it to the toy shell. May raise
`CommandNotFound`."""


@dataclass
class MemoryVolume:
    name: str
    labels: dict[str, str]
    files: dict[str, bytes] = field(default_factory=dict)
    """Path inside the volume -> content."""


@dataclass
class MemoryTask:
    """One simulated task; tests read it (`MemoryRuntime.task`), the runtime changes it."""

    task_id: TaskId
    spec: TaskSpec
    files: Files
    status: TaskStatus = TaskStatus.CREATED
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    logs: list[LogLine] = field(default_factory=list)
    memory_usage: int = DEFAULT_MEMORY_USAGE
    listening: dict[int, PortHandler] = field(default_factory=dict)
    """Ports a server inside the task accepts connections on."""
    published: dict[int, tuple[asyncio.Server, int]] = field(default_factory=dict)
    """Task port -> (its listener on loopback, the host port)."""
    connections: Connections = field(default_factory=Connections)
    sessions: set[CommandSession] = field(default_factory=set)
    program: Program | None = None
    moment: datetime | None = None
    """How far in time the program has run (its next output's stamp)."""
    wake_at: datetime | None = None
    """When the sleeping program goes on; None while it runs (or sleeps for ever)."""
    sleeps_forever: bool = False
    joined: set[str] = field(default_factory=set)
    """Networks the task joined after its launch (`join_network`)."""
    partial: dict[Stream, bytes] = field(default_factory=lambda: {"stdout": b"", "stderr": b""})
    """Output after the last newline of each stream, logged once the line ends."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set (and replaced) on every change, for log followers."""
    paused: bool = False
    """Frozen by `pause`: its program does not advance and it takes no command until resumed."""

    def state(self) -> TaskState:
        return TaskState(
            task_id=self.task_id,
            name=self.spec.name,
            labels=dict(self.spec.labels),
            status=self.status,
            exit_code=self.exit_code,
            oom_killed=self.oom_killed,
            started_at=self.started_at,
            finished_at=self.finished_at,
            ports={port: ("127.0.0.1", host) for port, (_s, host) in self.published.items()},
        )

    def context(
        self, env: Mapping[str, str] | None = None, *, terminal: tuple[int, int] | None = None
    ) -> Context:
        """What a command in this task sees: its environment (and `env`), its files, and
        the terminal's (columns, rows) if it runs on one."""
        return Context(
            env={"PATH": "/bin", "HOME": "/root", **self.spec.env, **(env or {})},
            files=self.files,
            hostname=self.task_id[:12],
            terminal=terminal,
        )

    def begin(self, now: datetime) -> None:
        """The task's process starts now (its program is given by `run` or `run_forever`)."""
        self.status, self.started_at, self.moment = TaskStatus.RUNNING, now, now

    def publish(self, port: int, server: asyncio.Server) -> None:
        """`server` on loopback now forwards the host port it listens on to `port`."""
        self.published[port] = (server, server.sockets[0].getsockname()[1])

    def run(self, program: Program) -> None:
        """The task's process runs `program` (advanced by `advance`)."""
        self.program = program

    def run_forever(self) -> None:
        """The task's process runs the image's own command: a server that never ends."""
        self.sleeps_forever = True

    def serve(self, port: int, handler: PortHandler) -> None:
        """A server inside the task now accepts connections on `port` with `handler`."""
        self.listening[port] = handler

    def set_memory_usage(self, used: int) -> None:
        self.memory_usage = used

    def attach(self, session: CommandSession) -> None:
        """A command session now runs in the task (and is killed when the task ends)."""
        self.sessions.add(session)

    def detach(self, session: CommandSession) -> None:
        """The session ended by itself."""
        self.sessions.discard(session)

    def release(self) -> None:
        """Stop listening on published ports and end connections into the task (the
        runtime is closing)."""
        for server, _port in self.published.values():
            server.close()
        self.connections.close()

    def listen(self, port: int, root: str) -> None:
        """The toy `httpd` now serves the task's files under `root` on `port`."""

        def lookup(path: str) -> bytes | None:
            full = posixpath.normpath(posixpath.join(root, path.lstrip("/")))
            found = self.files.read(full)
            return found if found is not None else self.files.read(full + "/index.html")

        self.serve(port, http_responder(lookup))

    def notify(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def write(self, stream: Stream, data: bytes, when: datetime) -> None:
        pending = self.partial[stream] + data
        *lines, self.partial[stream] = pending.split(b"\n")
        for line in lines:
            self._log(stream, line, when)

    def _log(self, stream: Stream, line: bytes, when: datetime) -> None:
        # Lines of one instant are stamped a microsecond apart: their order is kept and a
        # `since` of one line's stamp starts at that line, as with a real engine's stamps.
        if self.logs and when <= self.logs[-1].timestamp:
            when = self.logs[-1].timestamp + timedelta(microseconds=1)
        self.logs.append(LogLine(when, stream, line.decode(errors="replace")))
        size = sum(len(entry.message) + 1 for entry in self.logs)
        while size > self.spec.log_max_bytes and self.logs:
            size -= len(self.logs.pop(0).message) + 1
        self.notify()

    def advance(self, now: datetime) -> tuple[int, datetime] | None:
        """Run the program up to `now`; (exit code, when) if it ended."""
        reply: bytes | None = None
        while self.status is TaskStatus.RUNNING and self.program is not None:
            if self.sleeps_forever:
                return None
            if self.wake_at is not None:
                if now < self.wake_at:
                    return None
                self.moment, self.wake_at = self.wake_at, None
            moment = self.moment or now
            try:
                effect = self.program.send(reply)
            except StopIteration as stop:
                return stop.value, moment
            reply = None
            if isinstance(effect, Write):
                self.write(effect.stream, effect.data, moment)
            elif isinstance(effect, Listen):
                self.listen(effect.port, effect.root)
            elif isinstance(effect, ReadInput):
                reply = b""  # a task's standard input is empty
            elif isinstance(effect, Sleep):
                if effect.seconds is None:
                    self.sleeps_forever = True
                else:
                    self.wake_at = moment + timedelta(seconds=effect.seconds)
        return None

    def end(self, exit_code: int, when: datetime, *, oom: bool = False) -> bool:
        """The process ended: record it, close its ports and commands. False if it was not
        running."""
        if self.status is not TaskStatus.RUNNING:
            return False
        for stream, rest in self.partial.items():
            if rest:
                self._log(stream, rest, when)
                self.partial[stream] = b""
        self.status, self.exit_code, self.oom_killed = TaskStatus.EXITED, exit_code, oom
        self.paused = False
        self.finished_at = max(when, self.started_at or when)
        if self.program is not None:
            self.program.close()
        self.listening.clear()
        for server, _port in self.published.values():
            server.close()
        self.published.clear()
        self.connections.close()
        for session in list(self.sessions):
            session.kill()
        self.notify()
        return True
