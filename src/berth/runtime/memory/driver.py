"""The in-memory driver: the whole runtime contract, with no engine and no processes.

Tasks, volumes and networks are objects in this process. A task's command is interpreted by a
toy shell (`shell`): `["sh", "-c", "echo hi; exit 3"]` prints `hi` and exits 3 as it
would on a real engine, `sleep 5` sleeps five seconds of the runtime's clock, `httpd -p 80`
serves HTTP; a task without a command (the image's own) runs until stopped. Commands in
tasks (`exec`, terminals, attached processes) run through the same shell, or through a
test's `exec_handler`. It is deterministic: no threads, no timers, no sleeping. Time is the
injected `Clock`'s: a task's program advances lazily, whenever the runtime is called, up to
the clock's now, so a test on a `ManualClock` moves time and then calls (or `catch_up`).

Tests steer what a real engine would decide on its own: `finish` (a task exits with a
code), `emit` (it prints), `oom_kill`, `vanish` (removed behind berth's back),
`available = False` (the engine is down), `fail_next` (the next call of a method raises),
`set_memory_usage`, `serve` (a server inside a task), and they read `task(...)`.

Selected by `runtime.factory` (settings `runtime = "memory"`); nothing else imports it but
tests.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hashlib
import socket
from collections.abc import AsyncGenerator, Iterable, Mapping
from datetime import datetime

from berth.clock import SYSTEM_CLOCK, Clock
from berth.runtime.base import (
    Capacity,
    CommandNotFound,
    ExecResult,
    ExecSpec,
    ImageNotFound,
    InteractiveSession,
    InvalidTaskSpec,
    LogLine,
    PortUnreachable,
    ProcessSession,
    RuntimeDriverError,
    RuntimeUnavailable,
    TaskEvent,
    TaskId,
    TaskNotFound,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from berth.runtime.memory.events import EventHub, matches
from berth.runtime.memory.ports import PortHandler
from berth.runtime.memory.sessions import (
    ExecReply,
    MemoryProcess,
    MemoryTerminal,
    run_command,
    scripted,
)
from berth.runtime.memory.shell import Files, Stream, find_program, run_argv
from berth.runtime.memory.tasks import (
    KILLED,
    STOPPED,
    ExecCall,
    ExecHandler,
    MemoryTask,
    MemoryVolume,
)

__all__ = ["ExecCall", "ExecHandler", "ExecReply", "MemoryRuntime", "MemoryTask", "MemoryVolume"]

DEFAULT_IMAGES = ("berth/busybox:latest", "berth-test/busybox:latest")
DEFAULT_CAPACITY = Capacity(cpus=4.0, memory_bytes=8 * 1024**3)
MIN_MEMORY_MB = 6
"""The smallest memory limit a task may have (Docker's own minimum)."""


def _image_ref(image: str) -> str:
    name, _, tag = image.rpartition(":")
    return image if name and "/" not in tag else f"{image}:latest"


class MemoryRuntime:
    """`Runtime` in memory. See the module docstring."""

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        images: Iterable[str] = DEFAULT_IMAGES,
        capacity: Capacity = DEFAULT_CAPACITY,
        exec_handler: ExecHandler | None = None,
    ) -> None:
        self.clock = clock
        self.images = {_image_ref(image) for image in images}
        self.capacity_answer = capacity
        self.exec_handler = exec_handler
        self.volumes: dict[str, MemoryVolume] = {}
        self.networks: dict[str, dict[str, str]] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        """How often each method was called (a test checks nothing was launched twice)."""
        self._tasks: dict[TaskId, MemoryTask] = {}
        self._names: dict[str, TaskId] = {}
        self._created = 0
        self._available = True
        self._failures: dict[str, list[RuntimeDriverError]] = {}
        self._events = EventHub()

    # -- what tests steer ------------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self._available

    @available.setter
    def available(self, up: bool) -> None:
        """Down: every call raises `RuntimeUnavailable` and event streams end (as a real
        engine's do); tasks keep their state for when it is back."""
        self._available = up
        if not up:
            self._events.end_all()

    def fail_next(self, method: str, error: RuntimeDriverError) -> None:
        """The next call of `method` (e.g. "start") raises `error` instead of acting."""
        self._failures.setdefault(method, []).append(error)

    def task(self, task_id_or_name: str) -> MemoryTask:
        """A task by id or name, to read; `KeyError` if there is none."""
        found = self._find(task_id_or_name)
        if found is None:
            raise KeyError(task_id_or_name)
        return found

    def tasks(self) -> list[MemoryTask]:
        return list(self._tasks.values())

    def catch_up(self) -> None:
        """Run every task's program up to the clock's now (every call does this first)."""
        now = self.clock.now()
        for task in list(self._tasks.values()):
            self._advance(task, now)

    def finish(self, task_id: str, exit_code: int = 0) -> None:
        """The task's process exits with `exit_code` now."""
        self._end(self._running(task_id), exit_code)

    def oom_kill(self, task_id: str) -> None:
        """The task is killed for exceeding its memory limit."""
        self._end(self._running(task_id), KILLED, oom=True)

    def emit(self, task_id: str, text: str, stream: Stream = "stdout") -> None:
        """The task prints `text` now (lines end at newlines, as in a real task's output)."""
        task = self._running(task_id)
        task.write(stream, text.encode(), self.clock.now())

    def vanish(self, task_id: str) -> None:
        """The task is removed behind berth's back (someone ran `docker rm -f`)."""
        task = self.task(task_id)
        if task.status is TaskStatus.RUNNING:
            self._end(task, KILLED)
        self._forget(task)

    def serve(self, task_id: str, port: int, handler: PortHandler) -> None:
        """A server inside the running task now accepts connections on `port`."""
        self._running(task_id).serve(port, handler)

    def set_memory_usage(self, task_id: str, used: int) -> None:
        self.task(task_id).set_memory_usage(used)

    def add_image(self, image: str) -> None:
        self.images.add(_image_ref(image))

    # -- plumbing --------------------------------------------------------------------------

    def _enter(self, method: str) -> None:
        self.calls[method] += 1
        if not self._available:
            raise RuntimeUnavailable(
                "the in-memory container engine is unavailable (its test switched it off)"
            )
        failures = self._failures.get(method)
        if failures:
            raise failures.pop(0)
        self.catch_up()

    def _find(self, task_id: str) -> MemoryTask | None:
        key = self._names.get(task_id, TaskId(task_id))
        return self._tasks.get(key)

    def _running(self, task_id: str) -> MemoryTask:
        task = self.task(task_id)
        if task.status is not TaskStatus.RUNNING:
            raise TaskNotFound(f"task {task_id} is not running")
        return task

    def _publish(self, task: MemoryTask, action: str, **extra: str) -> None:
        event = TaskEvent(task.task_id, action, {**task.spec.labels, **extra})
        self._events.publish(event, task.spec.labels)

    def _advance(self, task: MemoryTask, now: datetime) -> None:
        if task.paused:
            return  # frozen (it catches up once resumed: a simplification)
        ended = task.advance(now)
        if ended is not None:
            self._end(task, ended[0], at=ended[1])

    def _end(
        self, task: MemoryTask, exit_code: int, *, at: datetime | None = None, oom: bool = False
    ) -> None:
        if task.end(exit_code, at or self.clock.now(), oom=oom):
            if oom:
                self._publish(task, "oom")
            self._publish(task, "die", exitCode=str(exit_code))

    def _forget(self, task: MemoryTask) -> None:
        self._tasks.pop(task.task_id, None)
        self._names.pop(task.spec.name, None)
        self._publish(task, "destroy")
        task.notify()

    # -- the contract: images and tasks ----------------------------------------------------

    async def ping(self) -> None:
        self._enter("ping")

    async def ensure_image(self, image: str) -> None:
        self._enter("ensure_image")
        if _image_ref(image) not in self.images:
            raise ImageNotFound(
                f"image '{image}' was not found locally and could not be pulled: "
                "the in-memory engine has no such image"
            )

    async def launch(self, spec: TaskSpec, *, details: bool = True) -> TaskState:
        """Details cost nothing here, so they are always given."""
        self._enter("launch")
        created = await self.create(spec)
        return await self.start(created.task_id)

    async def create(self, spec: TaskSpec) -> TaskState:
        self._enter("create")
        existing = self._find(spec.name)
        if existing is not None:
            return existing.state()
        if _image_ref(spec.image) not in self.images:
            raise ImageNotFound(f"image '{spec.image}' is not available: No such image")
        if spec.memory_mb < MIN_MEMORY_MB:
            raise InvalidTaskSpec(
                f"the engine refused task '{spec.name}': "
                f"Minimum memory limit allowed is {MIN_MEMORY_MB}MB"
            )
        cpus = self.capacity_answer.cpus
        if not 0.01 <= spec.cpu <= cpus:
            raise InvalidTaskSpec(
                f"the engine refused task '{spec.name}': "
                f"Range of CPUs is from 0.01 to {cpus:g}, as there are only {cpus:g} CPUs"
            )
        if spec.network and spec.network not in self.networks:
            self.networks[spec.network] = dict(spec.network_labels)
        mounts: dict[str, dict[str, bytes]] = {}
        for name, path in spec.volumes:
            volume = self.volumes.setdefault(name, MemoryVolume(name, dict(spec.volume_labels)))
            mounts[path] = volume.files
        self._created += 1
        digest = hashlib.sha256(f"{self._created}:{spec.name}".encode()).hexdigest()
        task = MemoryTask(task_id=TaskId(digest), spec=spec, files=Files(mounts))
        self._tasks[task.task_id] = task
        self._names[spec.name] = task.task_id
        self._publish(task, "create")
        return task.state()

    async def start(self, task_id: TaskId, *, details: bool = True) -> TaskState:
        try:
            self._enter("start")
        except InvalidTaskSpec:
            refused = self._find(task_id)  # a start the engine refuses removes the task
            if refused is not None and refused.status is TaskStatus.CREATED:
                self._forget(refused)
            raise
        task = self._find(task_id)
        if task is None:
            raise TaskNotFound(f"task '{task_id}' was removed while being launched")
        if task.status is not TaskStatus.CREATED:
            return task.state()
        now = self.clock.now()
        task.begin(now)
        for port in task.spec.ports:
            accept = functools.partial(self._accept_published, task, port)
            task.publish(port, await asyncio.start_server(accept, "127.0.0.1", 0))
        self._publish(task, "start")
        argv = task.spec.command
        if argv is None:
            task.run_forever()  # the image's own command: a server
        elif not argv or find_program(argv[0]) is None:
            # What a real engine's init says (and exits with) for a program the image lacks.
            missing = argv[0] if argv else "(nothing)"
            complaint = f"exec {missing} failed: No such file or directory\n"
            task.write("stderr", complaint.encode(), now)
            self._end(task, 127, at=now)
        else:
            task.run(run_argv(list(argv), task.context()))
            self._advance(task, now)
        return task.state()

    async def _accept_published(
        self,
        task: MemoryTask,
        port: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        handler = task.listening.get(port) if task.status is TaskStatus.RUNNING else None
        if handler is None:
            writer.close()  # the publisher accepted; nothing inside did
            return
        task.connections.serve(handler, reader, writer)

    async def stop(self, task_id: TaskId, *, grace_seconds: float) -> None:
        self._enter("stop")
        task = self._find(task_id)
        if task is not None and task.status is TaskStatus.RUNNING:
            self._end(task, STOPPED)
            self._publish(task, "stop")

    async def remove(self, task_id: TaskId) -> None:
        self._enter("remove")
        task = self._find(task_id)
        if task is None:
            return
        if task.status is TaskStatus.RUNNING:
            self._end(task, KILLED)
        self._forget(task)

    async def pause(self, task_id: TaskId) -> None:
        self._enter("pause")
        task = self._frozen_or_not(task_id)
        if not task.paused:
            task.paused = True
            self._publish(task, "pause")

    async def resume(self, task_id: TaskId) -> None:
        self._enter("resume")
        task = self._frozen_or_not(task_id)
        if task.paused:
            task.paused = False
            self._publish(task, "unpause")

    async def join_network(
        self, task_id: TaskId, network: str, network_labels: Mapping[str, str]
    ) -> None:
        self._enter("join_network")
        task = self._find(task_id)
        if task is None:
            raise TaskNotFound(f"no task {task_id}")
        self.networks.setdefault(network, dict(network_labels))
        task.joined.add(network)

    def _frozen_or_not(self, task_id: TaskId) -> MemoryTask:
        task = self._find(task_id)
        if task is None or task.status is not TaskStatus.RUNNING:
            raise TaskNotFound(f"task {task_id} does not run")
        return task

    async def inspect(self, task_id: TaskId) -> TaskState | None:
        self._enter("inspect")
        task = self._find(task_id)
        return None if task is None else task.state()

    async def list_tasks(self, selector: Mapping[str, str]) -> list[TaskState]:
        self._enter("list_tasks")
        return [t.state() for t in self._tasks.values() if matches(t.spec.labels, selector)]

    # -- streams ---------------------------------------------------------------------------

    async def logs(
        self, task_id: TaskId, *, follow: bool, since: datetime | None = None
    ) -> AsyncGenerator[LogLine, None]:
        self._enter("logs")
        task = self._find(task_id)
        if task is None:
            raise TaskNotFound(f"task {task_id} does not exist")
        sent = 0
        while True:
            lines = task.logs
            for line in lines[sent:]:
                if since is None or line.timestamp >= since:
                    yield line
            sent = len(lines)
            if not follow or task.status is not TaskStatus.RUNNING:
                return
            changed = task.changed
            wait = None
            if task.wake_at is not None:
                wait = max((task.wake_at - self.clock.now()).total_seconds(), 0.001)
            try:
                await asyncio.wait_for(changed.wait(), wait)
            except TimeoutError:
                self.catch_up()

    async def events(self, selector: Mapping[str, str]) -> AsyncGenerator[TaskEvent, None]:
        """Ends with `RuntimeUnavailable` when the engine goes away (`available = False`)."""
        self._enter("events")
        async with contextlib.aclosing(self._events.watch(selector)) as stream:
            async for event in stream:
                yield event

    # -- commands in tasks -------------------------------------------------------------------

    def _command_task(self, task_id: TaskId, argv: list[str]) -> MemoryTask:
        task = self._find(task_id)
        if task is None:
            raise TaskNotFound(f"task {task_id} does not exist")
        if task.status is not TaskStatus.RUNNING or task.paused:
            state = "paused" if task.paused else "not running"
            raise TaskNotFound(f"task {task_id} is {state}; commands run only in running tasks")
        if not argv:
            raise RuntimeDriverError("a command to run in a task needs a program (argv is empty)")
        return task

    async def exec(self, task_id: TaskId, spec: ExecSpec) -> ExecResult:
        self._enter("exec")
        task = self._command_task(task_id, spec.argv)
        if self.exec_handler is not None:
            call = ExecCall(task.state(), list(spec.argv), dict(spec.env), spec.stdin)
            reply = self.exec_handler(call)
            if reply is not None:
                return scripted(reply, spec)
        if find_program(spec.argv[0]) is None:
            raise CommandNotFound(f"'{spec.argv[0]}' was not found in the task's image")
        return await run_command(run_argv(list(spec.argv), task.context(spec.env)), spec)

    async def open_terminal(
        self, task_id: TaskId, argv: list[str], *, cols: int, rows: int
    ) -> InteractiveSession:
        self._enter("open_terminal")
        task = self._command_task(task_id, argv)
        if find_program(argv[0]) is None:
            raise CommandNotFound(f"'{argv[0]}' was not found in the task's image")
        ctx = task.context({"TERM": "xterm-256color"}, terminal=(cols, rows))
        shell = find_program(argv[0]) == "sh" and len(argv) == 1
        terminal = MemoryTerminal(
            ctx, None if shell else run_argv(list(argv), ctx), on_end=task.detach
        )
        if not terminal.ended:
            task.attach(terminal)
        return terminal

    async def open_process(self, task_id: TaskId, argv: list[str]) -> ProcessSession:
        self._enter("open_process")
        task = self._command_task(task_id, argv)
        if find_program(argv[0]) is None:
            raise CommandNotFound(f"'{argv[0]}' was not found in the task's image")

        process = MemoryProcess(
            run_argv(list(argv), task.context()),
            on_listen=task.listen,
            on_end=task.detach,
        )
        if not process.ended:
            task.attach(process)
        return process

    async def open_port(self, task_id: TaskId, port: int) -> socket.socket:
        self._enter("open_port")
        if not 1 <= port <= 65535:
            raise PortUnreachable(f"{port} is not a TCP port (1-65535)")
        task = self._find(task_id)
        if task is None or task.status is not TaskStatus.RUNNING or task.paused:
            raise TaskNotFound(f"task {task_id} is not running")
        handler = task.listening.get(port)
        if handler is None:
            raise PortUnreachable(
                f"nothing accepts connections on port {port} inside the container "
                "(connection refused); start the server there first"
            )
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=theirs)
        task.connections.serve(handler, reader, writer)
        return ours

    # -- usage, volumes, networks -----------------------------------------------------------

    async def capacity(self) -> Capacity:
        self._enter("capacity")
        return self.capacity_answer

    async def memory_usage(self, task_id: TaskId) -> int | None:
        self._enter("memory_usage")
        task = self._find(task_id)
        return task.memory_usage if task and task.status is TaskStatus.RUNNING else None

    async def volume_usage(self, selector: Mapping[str, str]) -> dict[str, int]:
        self._enter("volume_usage")
        return {
            volume.name: sum(len(data) for data in volume.files.values())
            for volume in self.volumes.values()
            if matches(volume.labels, selector)
        }

    def _in_use(self) -> tuple[set[str], set[str]]:
        """Volumes and networks some task (running or not) still refers to."""
        tasks = self._tasks.values()
        volumes = {name for task in tasks for name, _path in task.spec.volumes}
        networks = {task.spec.network for task in tasks if task.spec.network}
        return volumes, networks.union(*(task.joined for task in tasks))

    async def remove_volumes(self, selector: Mapping[str, str]) -> None:
        self._enter("remove_volumes")
        used, _ = self._in_use()
        for name, volume in list(self.volumes.items()):
            if matches(volume.labels, selector) and name not in used:
                del self.volumes[name]

    async def remove_networks(self, selector: Mapping[str, str]) -> None:
        self._enter("remove_networks")
        _, used = self._in_use()
        for name, labels in list(self.networks.items()):
            if matches(labels, selector) and name not in used:
                del self.networks[name]

    async def close(self) -> None:
        """Stop listening on published ports and end connections into tasks."""
        for task in self._tasks.values():
            task.release()
