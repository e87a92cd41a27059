"""The Docker driver: the runtime contract over the Docker Engine HTTP API on a unix socket.

The engine is reached through `client.EngineClient` (which turns httpx errors into
`RuntimeUnavailable`); every engine error answer is translated here into `berth.runtime.base`'s
error tree, so nothing above this package sees an httpx exception or an engine status code.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import AsyncGenerator, Mapping
from datetime import datetime
from urllib.parse import quote

import httpx

from berth.runtime.base import (
    Capacity,
    ExecResult,
    ExecSpec,
    ImageNotFound,
    InteractiveSession,
    InvalidTaskSpec,
    LogLine,
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
from berth.runtime.docker.client import (
    DEFAULT_TIMEOUT,
    PULL_TIMEOUT,
    STREAM_TIMEOUT,
    EngineClient,
    unexpected,
)
from berth.runtime.docker.execs import DockerExec
from berth.runtime.docker.freezer import freeze
from berth.runtime.docker.logs import LogDecoder, since_param
from berth.runtime.docker.mapping import (
    Json,
    create_body,
    engine_message,
    label_filters,
    parse_event,
    path_segment,
    split_image,
    state_from_inspect,
    state_from_list_entry,
)
from berth.runtime.docker.netns import open_port_in_task
from berth.runtime.docker.networks import DockerNetworks

VOLUME_USAGE_TTL = 15.0
"""Seconds a volume-size measurement is reused (the engine walks every volume to measure)."""
CAPACITY_TTL = 60.0
"""Seconds the engine's CPUs and memory are reused before it is asked again."""


class DockerRuntime:
    """`Runtime` over the Docker Engine API (or Podman's compatible API) at `socket_path`."""

    def __init__(
        self, socket_path: str, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        """`transport` replaces the socket for the engine's JSON calls (a test's scripted
        engine); see `EngineClient`."""
        self.socket_path = socket_path
        self._engine = EngineClient(socket_path, transport=transport)
        self._networks = DockerNetworks(self._engine)
        # Images seen present: a launch skips re-checking them. An entry is dropped when a
        # create says the image is missing after all.
        self._known_images: set[str] = set()
        self._volume_sizes: tuple[float, list[Json]] | None = None
        self._capacity: tuple[float, Capacity] | None = None

    # -- images ----------------------------------------------------------------------------

    async def ping(self) -> None:
        response = await self._engine.request("GET", "/_ping", limits=httpx.Timeout(10.0))
        if response.status_code != 200:
            raise self._engine.unavailable(RuntimeError(f"ping answered {response.status_code}"))

    async def _image_present(self, image: str) -> bool:
        response = await self._engine.request("GET", f"/images/{quote(image, safe='/:@')}/json")
        if response.status_code == 200:
            return True
        if response.status_code in (400, 404):
            return False
        raise unexpected(f"inspecting image '{image}'", response)

    async def ensure_image(self, image: str) -> None:
        if image in self._known_images:
            return
        if await self._image_present(image):
            self._known_images.add(image)
            return
        name, tag = split_image(image)
        error = await self._pull(name, tag)
        if error is None and await self._image_present(image):
            self._known_images.add(image)
            return
        raise ImageNotFound(
            f"image '{image}' was not found locally and could not be pulled: "
            f"{error or 'the pull finished without producing the image'}"
        )

    async def _pull(self, name: str, tag: str) -> str | None:
        """Pull `name:tag`; the engine's error message, or None if the stream reported none."""
        params = {"fromImage": name, "tag": tag}
        async with self._engine.stream(
            "POST", "/images/create", params=params, limits=PULL_TIMEOUT
        ) as response:
            if response.status_code != 200:
                await response.aread()
                return engine_message(response)
            error: str | None = None
            async for line in response.aiter_lines():
                try:
                    message = json.loads(line) if line.strip() else {}
                except ValueError:
                    continue
                if isinstance(message, dict) and (
                    message.get("error") or message.get("errorDetail")
                ):
                    detail = message.get("errorDetail") or {}
                    error = str(message.get("error") or detail.get("message") or "pull failed")
            return error

    # -- tasks -----------------------------------------------------------------------------

    async def _create(self, spec: TaskSpec) -> tuple[str, bool]:
        """Create the container, or find the one already named so: (its id, newly created)."""
        for attempt in range(20):
            response = await self._engine.request(
                "POST", "/containers/create", params={"name": spec.name}, body=create_body(spec)
            )
            if response.status_code in (200, 201):
                return str(response.json()["Id"]), True
            message = engine_message(response)
            if response.status_code == 409:
                existing = await self.inspect(TaskId(spec.name))
                if existing is not None:
                    return existing.task_id, False
                # The name is reserved by a create still in flight (or was just removed):
                # let that settle, then look again or create it ourselves.
                await asyncio.sleep(min(0.05 * 2**attempt, 0.5))
                continue
            if response.status_code == 404 and attempt == 0 and self._forget_missing(spec):
                await self._prepare(spec)  # the image or network went away since last seen
                continue
            if response.status_code == 404 and "image" in message.lower():
                raise ImageNotFound(f"image '{spec.image}' is not available: {message}")
            if 400 <= response.status_code < 500:
                raise InvalidTaskSpec(f"the engine refused task '{spec.name}': {message}")
            raise unexpected(f"creating task '{spec.name}'", response)
        raise RuntimeDriverError(
            f"task '{spec.name}' stayed reserved but never appeared while being created"
        )

    def _forget_missing(self, spec: TaskSpec) -> bool:
        """Drop cached knowledge of the spec's image and network; True if there was any."""
        known = spec.image in self._known_images or spec.network in self._networks.known
        self._known_images.discard(spec.image)
        if spec.network:
            self._networks.known.discard(spec.network)
        return known

    async def _prepare(self, spec: TaskSpec) -> None:
        await self.ensure_image(spec.image)
        await self._networks.ensure(spec)

    async def launch(self, spec: TaskSpec, *, details: bool = True) -> TaskState:
        """Create and start; a task that was created but never started is started now.

        If the engine refuses to start the task (e.g. its command does not exist), the
        never-started container is removed and `InvalidTaskSpec` is raised.
        """
        task_id, created = await self._create_task(spec)
        return await self._start(TaskId(task_id), spec.name, known_created=created, details=details)

    async def create(self, spec: TaskSpec) -> TaskState:
        task_id, _ = await self._create_task(spec)
        state = await self.inspect(TaskId(task_id))
        if state is None:
            raise TaskNotFound(f"task '{spec.name}' was removed while being created")
        return state

    async def start(self, task_id: TaskId, *, details: bool = True) -> TaskState:
        return await self._start(task_id, task_id, known_created=False, details=details)

    async def _create_task(self, spec: TaskSpec) -> tuple[str, bool]:
        await self._prepare(spec)
        return await self._create(spec)

    async def _start(
        self, task_id: TaskId, name: str, *, known_created: bool, details: bool
    ) -> TaskState:
        if not known_created:
            state = await self.inspect(task_id)
            if state is None:
                raise TaskNotFound(f"task '{name}' was removed while being launched")
            if state.status is not TaskStatus.CREATED:
                return state
        response = await self._engine.request("POST", f"/containers/{path_segment(task_id)}/start")
        if response.status_code == 404:
            raise TaskNotFound(f"task '{name}' was removed while being launched")
        if response.status_code not in (204, 304):
            message = engine_message(response)
            await self.remove(task_id)
            raise InvalidTaskSpec(f"the engine could not start task '{name}': {message}")
        if response.status_code == 204 and not details:
            # Docker holds an inspect of a task that is exiting until it has released the
            # task's network and mounts, tens of milliseconds after its `die` event.
            return TaskState(task_id=task_id, name=name, labels={}, status=TaskStatus.RUNNING)
        state = await self.inspect(task_id)
        if state is None:
            raise TaskNotFound(f"task '{name}' was removed while being launched")
        return state

    async def stop(self, task_id: TaskId, *, grace_seconds: float) -> None:
        grace = max(0, math.ceil(grace_seconds))
        response = await self._engine.request(
            "POST",
            f"/containers/{path_segment(task_id)}/stop",
            params={"t": grace},
            limits=httpx.Timeout(grace + 30.0, connect=5.0),
        )
        if response.status_code not in (204, 304, 404):
            raise unexpected(f"stopping task {task_id}", response)

    async def remove(self, task_id: TaskId) -> None:
        response = await self._engine.request(
            "DELETE", f"/containers/{path_segment(task_id)}", params={"force": 1, "v": 1}
        )
        if response.status_code in (200, 204, 404):
            return
        if response.status_code == 409 and "in progress" in engine_message(response):
            return
        raise unexpected(f"removing task {task_id}", response)

    async def pause(self, task_id: TaskId) -> None:
        await freeze(self._engine, task_id, "pause")

    async def resume(self, task_id: TaskId) -> None:
        await freeze(self._engine, task_id, "unpause")

    async def _inspect_raw(self, task_id: str) -> Json | None:
        response = await self._engine.request("GET", f"/containers/{path_segment(task_id)}/json")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise unexpected(f"inspecting task {task_id}", response)
        data: Json = response.json()
        return data

    async def inspect(self, task_id: TaskId) -> TaskState | None:
        data = await self._inspect_raw(task_id)
        return None if data is None else state_from_inspect(data)

    async def list_tasks(self, selector: Mapping[str, str]) -> list[TaskState]:
        filters = json.dumps({"label": label_filters(selector)})
        response = await self._engine.request(
            "GET", "/containers/json", params={"all": 1, "filters": filters}
        )
        if response.status_code != 200:
            raise unexpected("listing tasks", response)
        listed = [state_from_list_entry(entry) for entry in response.json()]
        listed = [s for s in listed if all(s.labels.get(k) == v for k, v in selector.items())]
        # Only exited tasks need an inspect (exit code, OOM, times); inspecting a task that
        # is starting would wait on the engine's lock for that container.
        exited = [s.task_id for s in listed if s.status is TaskStatus.EXITED]
        details = {
            state.task_id: state
            for state in await asyncio.gather(*(self.inspect(i) for i in exited))
            if state is not None
        }
        return [
            details.get(s.task_id, s)
            for s in listed
            if s.status is not TaskStatus.EXITED or s.task_id in details
        ]

    # -- streams ---------------------------------------------------------------------------

    async def logs(
        self, task_id: TaskId, *, follow: bool, since: datetime | None = None
    ) -> AsyncGenerator[LogLine, None]:
        data = await self._inspect_raw(task_id)
        if data is None:
            raise TaskNotFound(f"task {task_id} does not exist")
        decoder = LogDecoder(tty=bool((data.get("Config") or {}).get("Tty")))
        params: dict[str, str | int] = {
            "stdout": 1,
            "stderr": 1,
            "timestamps": 1,
            "follow": int(follow),
        }
        if since is not None:
            params["since"] = since_param(since)
        async with self._engine.stream(
            "GET",
            f"/containers/{path_segment(task_id)}/logs",
            params=params,
            limits=STREAM_TIMEOUT if follow else DEFAULT_TIMEOUT,
        ) as response:
            if response.status_code == 404:
                raise TaskNotFound(f"task {task_id} does not exist")
            if response.status_code != 200:
                await response.aread()
                raise unexpected(f"reading logs of task {task_id}", response)
            async for chunk in response.aiter_raw():
                for line in decoder.feed(chunk):
                    yield line
        for line in decoder.finish():
            yield line

    async def events(self, selector: Mapping[str, str]) -> AsyncGenerator[TaskEvent, None]:
        """Raises `RuntimeUnavailable` if the engine closes the stream or drops away."""
        filters = json.dumps({"type": ["container"], "label": label_filters(selector)})
        async with self._engine.stream(
            "GET", "/events", params={"filters": filters}, limits=STREAM_TIMEOUT
        ) as response:
            if response.status_code != 200:
                await response.aread()
                raise unexpected("watching events", response)
            async for line in response.aiter_lines():
                event = parse_event(line, selector)
                if event is not None:
                    yield event
        raise self._engine.unavailable(ConnectionError("the event stream ended"))

    # -- commands in tasks (plumbing in execs) ------------------------------------------------

    async def exec(self, task_id: TaskId, spec: ExecSpec) -> ExecResult:
        execs = DockerExec(self._engine)
        return await execs.run(task_id, spec)

    async def open_terminal(
        self, task_id: TaskId, argv: list[str], *, cols: int, rows: int
    ) -> InteractiveSession:
        execs = DockerExec(self._engine)
        return await execs.open_terminal(task_id, argv, cols=cols, rows=rows)

    async def open_process(self, task_id: TaskId, argv: list[str]) -> ProcessSession:
        execs = DockerExec(self._engine)
        return await execs.open_process(task_id, argv)

    async def open_port(self, task_id: TaskId, port: int) -> socket.socket:
        """Connects from inside the task's network namespace (see `netns`)."""
        data = await self._inspect_raw(task_id)
        if data is None:
            raise TaskNotFound(f"task {task_id} does not exist")
        state: Json = data.get("State") or {}
        pid = int(state.get("Pid") or 0)
        if not state.get("Running") or pid <= 0:
            raise TaskNotFound(f"task {task_id} is not running")
        networks: Json = (data.get("NetworkSettings") or {}).get("Networks") or {}
        addresses = [str(n["IPAddress"]) for n in networks.values() if n.get("IPAddress")]
        return await open_port_in_task(pid, str(data.get("Id") or task_id), port, addresses)

    # -- usage and volumes -----------------------------------------------------------------

    async def capacity(self) -> Capacity:
        """From the engine's `/info` (`NCPU`, `MemTotal`), asked at most every
        `CAPACITY_TTL` seconds; the last answer is kept while the engine is away."""
        now = asyncio.get_running_loop().time()
        if self._capacity is not None and now - self._capacity[0] <= CAPACITY_TTL:
            return self._capacity[1]
        try:
            response = await self._engine.request("GET", "/info", limits=httpx.Timeout(5.0))
        except RuntimeUnavailable:
            if self._capacity is not None:
                return self._capacity[1]
            raise
        if response.status_code != 200:
            raise unexpected("reading the engine's capacity", response)
        info: Json = response.json()
        capacity = Capacity(
            cpus=float(info.get("NCPU") or 0), memory_bytes=int(info.get("MemTotal") or 0)
        )
        self._capacity = (now, capacity)
        return capacity

    async def memory_usage(self, task_id: TaskId) -> int | None:
        response = await self._engine.request(
            "GET", f"/containers/{path_segment(task_id)}/stats", params={"stream": 0, "one-shot": 1}
        )
        if response.status_code in (404, 409):
            return None
        if response.status_code != 200:
            raise unexpected(f"reading stats of task {task_id}", response)
        try:
            memory: Json = response.json().get("memory_stats") or {}
        except ValueError:  # a task stopping right now answers with an empty body
            return None
        usage = memory.get("usage")
        if not isinstance(usage, int):
            return None
        stats: Json = memory.get("stats") or {}
        # As `docker stats` does: page cache the kernel can drop is not counted as used.
        cache = stats.get("inactive_file", stats.get("total_inactive_file", 0))
        return max(usage - int(cache or 0), 0)

    async def volume_usage(self, selector: Mapping[str, str]) -> dict[str, int]:
        now = asyncio.get_running_loop().time()
        if self._volume_sizes is None or now - self._volume_sizes[0] > VOLUME_USAGE_TTL:
            response = await self._engine.request("GET", "/system/df", limits=PULL_TIMEOUT)
            if response.status_code != 200:
                raise unexpected("measuring volumes", response)
            volumes = response.json().get("Volumes") or []
            self._volume_sizes = (now, volumes)
        sizes: dict[str, int] = {}
        for volume in self._volume_sizes[1]:
            labels: Mapping[str, str] = volume.get("Labels") or {}
            if all(labels.get(k) == v for k, v in selector.items()):
                size = int((volume.get("UsageData") or {}).get("Size", -1))
                sizes[str(volume.get("Name"))] = max(size, 0)
        return sizes

    async def remove_volumes(self, selector: Mapping[str, str]) -> None:
        filters = json.dumps({"label": label_filters(selector)})
        response = await self._engine.request("GET", "/volumes", params={"filters": filters})
        if response.status_code != 200:
            raise unexpected("listing volumes", response)
        for volume in response.json().get("Volumes") or []:
            labels: Mapping[str, str] = volume.get("Labels") or {}
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
            deleted = await self._engine.request(
                "DELETE", f"/volumes/{path_segment(str(volume['Name']))}"
            )
            if deleted.status_code not in (204, 404, 409):  # 409: still in use, kept for now
                raise unexpected(f"removing volume {volume.get('Name')}", deleted)

    # -- networks --------------------------------------------------------------------------

    async def join_network(
        self, task_id: TaskId, network: str, network_labels: Mapping[str, str]
    ) -> None:
        await self._networks.join(task_id, network, network_labels)

    async def remove_networks(self, selector: Mapping[str, str]) -> None:
        await self._networks.remove(selector)

    async def close(self) -> None:
        await self._engine.close()
