"""The runtime contract: what berth needs from a container engine, and nothing more.

A *task* is one container (or pod) that berth launched for one run of a workload. Drivers
translate this small protocol onto an engine (the Docker Engine API, which Podman also
speaks; Kubernetes later) and translate the engine's own exceptions into the error tree
below, so nothing above a driver ever catches an engine library's exception.

Rules every driver keeps:

- Tasks carry the labels they were launched with; `list_tasks` returns only tasks whose
  labels include every pair of the selector (berth always selects on its instance label, so
  two berth instances sharing one engine never see each other's tasks).
- `launch` is idempotent by `TaskSpec.name`: launching a name that already exists returns the
  existing task's state instead of creating a second one. It returns once the engine has
  accepted and started the task, not once the process inside is ready.
- `stop` and `remove` are idempotent: a task that is already stopped or gone is not an error.
- `remove` never loses what berth still needs: callers read a finished task's result and logs
  before removing it.
- Times are timezone-aware UTC. A task's `started_at` and `finished_at` are the engine's own
  stamps (not the time berth looked), and `finished_at` is never before `started_at`.
"""

from __future__ import annotations

import enum
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NewType, Protocol, runtime_checkable

TaskId = NewType("TaskId", str)
"""The engine's own identifier of a task (a container id)."""


class RuntimeDriverError(Exception):
    """Base of every error a driver raises; the message is safe to show to the task's owner."""


class RuntimeUnavailable(RuntimeDriverError):
    """The engine cannot be reached (socket missing, daemon down, timeout)."""


class ImageNotFound(RuntimeDriverError):
    """The image is not present locally and could not be pulled."""


class TaskNotFound(RuntimeDriverError):
    """No task with that id exists (any more)."""


class InvalidTaskSpec(RuntimeDriverError):
    """The engine refused the spec (bad command, impossible limits...)."""


@dataclass(frozen=True)
class TaskSpec:
    """Everything needed to launch one task.

    `command` is an argv list run instead of the image's default command, or None to keep
    the image's own. `ports` are container TCP ports to publish on 127.0.0.1 at a port the
    engine picks (read back from `TaskState.ports`). `network` is a per-tenant network the
    driver creates on first use (labelled with `network_labels`).
    """

    name: str
    image: str
    command: list[str] | None
    env: Mapping[str, str]
    labels: Mapping[str, str]
    cpu: float
    memory_mb: int
    ports: tuple[int, ...] = ()
    network: str | None = None
    network_labels: Mapping[str, str] = field(default_factory=dict)
    network_isolated: bool = False
    """Tasks on the network cannot reach one another (a warm pool's holding network); set
    when the network is first made. A driver without networks of its own ignores it."""
    pids_limit: int = 1024
    log_max_bytes: int = 20 * 1024 * 1024
    volumes: tuple[tuple[str, str], ...] = ()
    """(volume name, absolute path in the task): persistent volumes, created on first use
    with `volume_labels`, kept when the task is removed."""
    volume_labels: Mapping[str, str] = field(default_factory=dict)
    volume_size_gb: float | None = None
    """The size each volume is made with (a dev box's `storage_gb`); None: the driver's own
    default. A driver whose volumes have no size (Docker's, the in-memory one) ignores it."""


class TaskStatus(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"


@dataclass(frozen=True)
class TaskState:
    """What the engine reports about one task."""

    task_id: TaskId
    name: str
    labels: Mapping[str, str]
    status: TaskStatus
    exit_code: int | None = None
    oom_killed: bool = False
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    ports: Mapping[int, tuple[str, int]] = field(default_factory=dict)
    """Container port -> (host address, host port) published on loopback."""


@dataclass(frozen=True)
class Capacity:
    """The most one task can ever be given on the engine: its machine's CPUs and memory."""

    cpus: float
    memory_bytes: int


@dataclass(frozen=True)
class LogLine:
    timestamp: datetime
    stream: Literal["stdout", "stderr"]
    message: str
    """One line of output without its trailing newline."""


@dataclass(frozen=True)
class TaskEvent:
    """A change the engine reports for a task (start, die, oom, destroy...)."""

    task_id: TaskId
    action: str
    labels: Mapping[str, str]
    """The task's labels, as far as the engine repeats them in its events."""
    at: datetime | None = None
    """When the engine says it happened (its clock), if it says."""
    exit_code: int | None = None
    """A `die` event's exit code, if the engine gives it."""


OutputCallback = Callable[[str, bytes], Awaitable[None]]
"""Called with ("stdout" | "stderr", chunk) as a command prints, for streaming callers."""


@dataclass(frozen=True)
class ExecSpec:
    """A one-off command in a running task.

    `stdin` is written to the command's standard input, which is then closed. Output beyond
    `max_output_bytes` per stream is dropped (the result says so). After `timeout_seconds`
    the command is killed and the result has `timed_out`.
    """

    argv: list[str]
    stdin: bytes | None = None
    timeout_seconds: float = 30.0
    max_output_bytes: int = 1024 * 1024
    env: Mapping[str, str] = field(default_factory=dict)
    on_output: OutputCallback | None = None
    """If set, each output chunk is passed here as it arrives (it is still collected)."""


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None
    """None only when the command was killed on timeout and no code could be read."""
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False


class CommandNotFound(RuntimeDriverError):
    """The command's program does not exist in the task's image (e.g. no `/bin/sh`)."""


class PortUnreachable(RuntimeDriverError):
    """Nothing accepts connections on that port inside the task (or it cannot be reached)."""


class InteractiveSession(Protocol):
    """A command attached to a pseudo-terminal in a task: bytes in, bytes out, resizable."""

    async def read(self) -> bytes:
        """The next output bytes; b"" once the command has ended and all output was read."""

    async def write(self, data: bytes) -> None:
        """Send bytes to the terminal (keystrokes)."""

    async def resize(self, *, cols: int, rows: int) -> None:
        """Set the terminal size (the command sees SIGWINCH). Docker's and the memory
        driver's take effect before this returns; Kubernetes' shortly after (the kubelet
        applies it on its own, not in order with the input written after it)."""

    async def wait(self) -> int | None:
        """The command's exit code once it has ended (None if it could not be read)."""

    async def close(self) -> None:
        """Detach; the command is killed if it still runs. Idempotent."""


class ProcessSession(Protocol):
    """A command in a task with its standard streams attached and no terminal.

    Unlike `exec`, input is streamed while the command runs and output is handed over as it
    comes, so long-lived two-way programs (a shell reading a pipe, rsync, git) work. stdout
    and stderr stay apart. One reader at a time: `read` must not be called again before the
    previous call returned.
    """

    async def read(self) -> tuple[Literal["stdout", "stderr"], bytes]:
        """The next output chunk and its stream; `("stdout", b"")` once all output was read."""

    async def write(self, data: bytes) -> None:
        """Send bytes to the command's standard input (dropped once it stopped reading)."""

    async def close_stdin(self) -> None:
        """End the command's standard input (it reads end-of-file); idempotent."""

    async def wait(self) -> int | None:
        """The command's exit code once it has ended (None if it could not be read)."""

    async def close(self) -> None:
        """Detach; the command is killed if it still runs. Idempotent."""


class Runtime(Protocol):
    """A container engine as berth sees it. See the module docstring for the rules."""

    async def ping(self) -> None:
        """Return if the engine answers; raise `RuntimeUnavailable` otherwise."""

    async def ensure_image(self, image: str) -> None:
        """Make `image` available locally, pulling it if needed; raise `ImageNotFound`."""

    async def launch(self, spec: TaskSpec, *, details: bool = True) -> TaskState:
        """Create and start a task (idempotent by `spec.name`): `create`, then `start`.
        With `details` false a task this call started is returned as `RUNNING` with no
        start time, ports or labels, without asking the engine again (an engine may answer
        that question about a task that already exited only once it cleaned up after it)."""

    async def create(self, spec: TaskSpec) -> TaskState:
        """Create a task without starting it (idempotent by `spec.name`: an existing task
        of that name is returned as it is). Raises `ImageNotFound` / `InvalidTaskSpec`."""

    async def start(self, task_id: TaskId, *, details: bool = True) -> TaskState:
        """Start a created task (a running or exited one is returned as it is). If the
        engine refuses to start it, the task is removed and `InvalidTaskSpec` raised;
        `TaskNotFound` if it does not exist. `details` as for `launch`."""

    async def stop(self, task_id: TaskId, *, grace_seconds: float) -> None:
        """Ask the task to stop (SIGTERM), kill it after `grace_seconds`; idempotent."""

    async def remove(self, task_id: TaskId) -> None:
        """Remove the task, killing it if it still runs; idempotent."""

    async def inspect(self, task_id: TaskId) -> TaskState | None:
        """The task's current state, or None when it does not exist."""

    async def list_tasks(self, selector: Mapping[str, str]) -> list[TaskState]:
        """Every task (running or not) whose labels include all of `selector`.

        Exited tasks come with their exit details; a running task's `started_at` may be None
        (listing is one cheap call; `inspect` a task for everything).
        """

    def logs(
        self, task_id: TaskId, *, follow: bool, since: datetime | None = None
    ) -> AsyncIterator[LogLine]:
        """The task's output lines, oldest first; with `follow`, until the task ends."""

    def events(self, selector: Mapping[str, str]) -> AsyncIterator[TaskEvent]:
        """Task events as they happen, for tasks matching `selector`, until cancelled."""

    async def exec(self, task_id: TaskId, spec: ExecSpec) -> ExecResult:
        """Run a command in a running task and collect its output (see `ExecSpec`).

        Raises `TaskNotFound` if the task does not exist or no longer runs, and
        `CommandNotFound` if the program does not exist in the image.
        """

    async def open_terminal(
        self, task_id: TaskId, argv: list[str], *, cols: int, rows: int
    ) -> InteractiveSession:
        """Start `argv` in a running task on a pseudo-terminal of the given size.

        Raises `TaskNotFound` if the task does not run, `CommandNotFound` if `argv[0]` is
        missing from the image.
        """

    async def capacity(self) -> Capacity:
        """The engine machine's CPUs and memory, which no task's limits can exceed. The
        driver caches it (the machine seldom changes); `RuntimeUnavailable` if the engine
        cannot be reached and nothing is cached yet."""

    async def memory_usage(self, task_id: TaskId) -> int | None:
        """Bytes of memory the running task uses now, or None if it does not run."""

    async def volume_usage(self, selector: Mapping[str, str]) -> dict[str, int]:
        """Bytes used by each volume (by name) carrying `selector`'s labels; may be a few
        seconds stale (measuring is expensive)."""

    async def remove_volumes(self, selector: Mapping[str, str]) -> None:
        """Remove the volumes carrying all of `selector`'s labels; idempotent. Volumes still
        in use by a task are kept (and removed by a later call)."""

    async def open_process(self, task_id: TaskId, argv: list[str]) -> ProcessSession:
        """Start `argv` in a running task with stdin, stdout and stderr attached, no terminal.

        Returns once the command runs (or has already ended). Raises `TaskNotFound` if the
        task does not run, `CommandNotFound` if `argv[0]` is missing from the image.
        """

    async def open_port(self, task_id: TaskId, port: int) -> socket.socket:
        """A TCP connection to `port` as seen from *inside* the running task: on
        `127.0.0.1`, else on the task's own network address (a server may listen on either).

        This reaches a server the task binds on its own loopback (as `ssh -L` users expect)
        without publishing the port or routing to the task's network address from outside. Returns a
        connected, non-blocking socket the caller owns (and closes), ready to hand to the
        event loop as streams (`asyncio.open_connection(sock=...)`) or a protocol. Raises
        `TaskNotFound` if the task does not run and `PortUnreachable` if nothing accepts
        connections on that port (or the driver cannot enter the task's network from where
        berth runs).
        """

    async def remove_networks(self, selector: Mapping[str, str]) -> None:
        """Remove unused networks carrying all of `selector`'s labels; idempotent."""

    async def close(self) -> None:
        """Release connections."""


@runtime_checkable
class Pausing(Protocol):
    """An optional ability: freezing a running task's processes and thawing them, its memory
    and files kept as they are (Docker's pause, the cgroup freezer). A driver whose engine
    cannot freeze a task (Kubernetes has no pause) does not implement it.

    A paused task is still listed and inspected as `RUNNING`; commands (`exec`, terminals,
    processes, ports) are refused in it until it is resumed; `stop` and `remove` work on it.
    """

    async def pause(self, task_id: TaskId) -> None:
        """Freeze the task's processes; idempotent (a paused task stays paused).
        `TaskNotFound` if the task does not exist or does not run."""

    async def resume(self, task_id: TaskId) -> None:
        """Thaw a paused task's processes, which carry on where they were; idempotent (a
        running task that is not paused is left as it is). `TaskNotFound` if the task does
        not exist or does not run."""


@runtime_checkable
class NetworkJoining(Protocol):
    """An optional ability: attaching a running task to one more network, the task and its
    published ports otherwise unchanged (Docker's `network connect`). Warm pools use it to
    give a task made ahead on a holding network to its tenant (`berth.domain.warm_pools`);
    a driver whose tasks cannot change networks (Kubernetes: a pod cannot move into another
    namespace) does not implement it.
    """

    async def join_network(
        self, task_id: TaskId, network: str, network_labels: Mapping[str, str]
    ) -> None:
        """Attach the task to `network` (created with `network_labels` on first use);
        idempotent. `TaskNotFound` if the task does not exist."""
