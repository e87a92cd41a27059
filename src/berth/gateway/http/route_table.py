"""The HTTP gateway's routing table, and how it is built from the store and the engine.

A route key is `(workload id, listening port)`: a request's `Host` header names the workload
(`<workload id>.<public domain>`, any `:port` suffix ignored) and the gateway port it arrived
on picks among that workload's routes. A route lists the upstreams to spread requests over:

- `LoopbackAddress`: a service replica's `port`, which the engine publishes on 127.0.0.1;
- `TaskPort`: a container's ingress `target_port`, which is not published and is reached with
  `Runtime.open_port` (a connection made inside the task's network namespace).

A route with no upstreams means the workload exists but has no running task, or only paused
ones (the gateway holds the request while it wakes or resumes it, or answers 503 saying why
not); no route at all, once the workload was looked up (`load_workload_routes`, see
`route_lookup`), means there is no such service (also 503).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from berth.domain import labels, routing
from berth.domain.context import Domain
from berth.runtime.base import Runtime, TaskId, TaskState, TaskStatus


@dataclass(frozen=True)
class TaskPort:
    """An upstream reached through `Runtime.open_port(task_id, port)` (inside the task)."""

    task_id: TaskId
    port: int

    def __str__(self) -> str:
        return f"task {self.task_id[:12]} port {self.port}"


@dataclass(frozen=True)
class LoopbackAddress:
    """An upstream reachable by plain TCP (a service port published on loopback).

    `inside` is the same port as the task itself sees it, when known: the engine's port
    publisher accepts connections before the task listens, so readiness is asked there.
    """

    host: str
    port: int
    inside: TaskPort | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


Upstream = LoopbackAddress | TaskPort

HOST_CACHE_SIZE = 4096
"""Host headers whose workload id `RouteTable.workload_of` remembers (then starts over)."""

RouteKey = tuple[str, int]
"""(workload id, gateway listening port)."""


@dataclass(frozen=True)
class Route:
    """Where requests for one workload on one gateway port go.

    `upstreams` is empty when the workload exists but none of its tasks runs now.
    """

    workload_id: str
    upstreams: tuple[Upstream, ...]


class RouteTable:
    """Maps `(Host header, listening port)` to a route; replaced wholesale, never edited.

    `set_routes` swaps in a new immutable mapping in one assignment, so a lookup sees either
    the old table or the new one, and requests already forwarded keep their upstream
    connection (route changes never drop in-flight requests). `add_found` swaps in a copy
    with one workload's routes replaced: one a change named, or one a request named before
    the whole table knew it.

    Reads of the store overlap (a whole table is built while one workload is looked up), so
    each says which read it came from (`begin_read`): one workload's routes read after the
    read a whole table came from are kept over what that table says of it, until a table
    read later still replaces them.
    """

    def __init__(self, public_domain: str, routes: Mapping[RouteKey, Route] | None = None) -> None:
        self.public_domain = public_domain.lower().strip(".")
        self._suffix = "." + self.public_domain
        self._routes: Mapping[RouteKey, Route] = dict(routes or {})
        self._changed = asyncio.Event()
        self._hosts: dict[str, str | None] = {}
        self._reads = 0
        """How many reads `begin_read` began: a read's number orders it among the others."""
        self._table_read = 0
        """The read the whole table last set came from."""
        self._found: dict[str, tuple[int, dict[RouteKey, Route]]] = {}
        """Workloads `add_found` put in the table, with the read each came from."""

    def begin_read(self) -> int:
        """Call before reading the store for routes; pass the number to `set_routes` or
        `add_found` with what was read."""
        self._reads += 1
        return self._reads

    def set_routes(self, mapping: Mapping[RouteKey, Route], *, read: int | None = None) -> None:
        """Atomically replace the whole table with a copy of `mapping`, built from the read
        numbered `read` (None: as of now). A workload `add_found` added from a later read
        keeps its routes over what `mapping` says of it."""
        read = self.begin_read() if read is None else read
        self._table_read = read
        self._found = {wid: found for wid, found in self._found.items() if found[0] > read}
        routes = dict(mapping)
        if self._found:
            routes = {key: route for key, route in routes.items() if key[0] not in self._found}
            for _read, found in self._found.values():
                routes.update(found)
        self._swap(routes)

    def add_found(self, workload_id: str, routes: Mapping[RouteKey, Route], *, read: int) -> None:
        """Put `workload_id`'s routes (all of them, built from the read numbered `read`; none:
        it serves nothing now, and its routes leave the table) in the table in place of those
        it has; nothing if the whole table came from a later read (it knows better)."""
        if read < self._table_read:
            return
        found = {key: route for key, route in routes.items() if key[0] == workload_id}
        if (
            not found
            and workload_id not in self._found
            and not any(key[0] == workload_id for key in self._routes)
        ):
            return  # nothing to serve, nothing served before: the table stays as it is
        self._found[workload_id] = (read, found)
        table = {key: route for key, route in self._routes.items() if key[0] != workload_id}
        table.update(found)
        self._swap(table)

    def hold(self, workload_id: str) -> None:
        """Empty `workload_id`'s routes now (its tasks were frozen: requests must reach the
        waker, not a task that cannot answer), as if read from the store now: a table read
        earlier and set later does not bring its upstreams back; one read later does."""
        held = {key: Route(workload_id, ()) for key in self._routes if key[0] == workload_id}
        if held:
            self.add_found(workload_id, held, read=self.begin_read())

    def _swap(self, routes: dict[RouteKey, Route]) -> None:
        self._routes = routes
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_changed(self, at_most: float) -> None:
        """Return at the next `set_routes`, or after `at_most` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), at_most)

    def routes(self) -> Mapping[RouteKey, Route]:
        """The current table (treat as read-only)."""
        return self._routes

    def listen_ports(self) -> set[int]:
        """Every gateway port some route needs."""
        return {port for _, port in self._routes}

    def workload_of(self, host_header: str) -> str | None:
        """The workload id a Host header names, or None if it is not under the public domain.

        Case-insensitive; a `:port` suffix and a trailing dot are ignored; only a single DNS
        label directly under the public domain names a workload. Answers are remembered (a
        bounded cache: the gateway asks this for every request).
        """
        if host_header in self._hosts:
            return self._hosts[host_header]
        if len(self._hosts) >= HOST_CACHE_SIZE:
            self._hosts.clear()
        workload_id = self._hosts[host_header] = self._workload_of(host_header)
        return workload_id

    def _workload_of(self, host_header: str) -> str | None:
        host = host_header.strip().lower()
        if host.startswith("["):  # an IPv6 literal never names a workload
            return None
        host = host.rsplit(":", 1)[0] if ":" in host else host
        host = host.rstrip(".")
        if not host.endswith(self._suffix):
            return None
        label = host[: -len(self._suffix)]
        if not label or "." in label:
            return None
        return label

    def resolve(self, host_header: str, listen_port: int) -> Route | None:
        """The route for this Host header on this gateway port, or None."""
        workload_id = self.workload_of(host_header)
        if workload_id is None:
            return None
        return self._routes.get((workload_id, listen_port))


def gateway_port_for(external_port: int, *, http_port: int, https_port: int | None) -> int | None:
    """The gateway port that serves an ingress rule's external port: 80 and 443 map to the
    gateway's HTTP and HTTPS ports (None when HTTPS is off); others are listened on as is."""
    if external_port == 80:
        return http_port
    if external_port == 443:
        return https_port
    return external_port


async def load_routes(
    domain: Domain, *, http_port: int, https_port: int | None = None
) -> dict[RouteKey, Route]:
    """Build the routing table from the store and the engine's running tasks.

    - Each service with a `port` (not deleted) gets a route on `http_port` (and `https_port`
      when given) to the published loopback address of that port for every running task
      of an active (pending or running) run; a service with none gets an empty route.
    - Each container's ingress rule gets a route on the gateway port the rule's external
      port maps to (`gateway_port_for`), to `TaskPort(task, target_port)` for its running
      task (empty when the container is not running).

    Tasks are read with one `list_tasks` on this instance's label and matched to runs by
    their `dev.berth.run` label (falling back to `dev.berth.workload`). Raises
    `RuntimeDriverError` if the engine cannot be listed; requires `domain.runtime`.
    """
    runtime = _runtime_of(domain)
    records = await routing.routable(domain)
    tasks = await runtime.list_tasks(labels.instance_selector(domain.instance_id))
    return _build_routes(records, tasks, http_port=http_port, https_port=https_port)


async def load_workload_routes(
    domain: Domain, workload_id: str, *, http_port: int, https_port: int | None = None
) -> dict[RouteKey, Route]:
    """One workload's routes, as `load_routes` builds them, from one indexed read of the
    store and a listing of that workload's tasks only; empty when it is not routable (no
    such workload, deleted, a service without a port, a container without rules). A
    workload with no active run has no task to route to: its routes are empty, and the
    engine is not asked (a service scaled to zero changes often and runs nothing)."""
    runtime = _runtime_of(domain)
    records = await routing.routable(domain, workload_id=workload_id)
    if not records.workloads:
        return {}
    tasks: list[TaskState] = []
    if records.active_runs:
        tasks = await runtime.list_tasks(labels.workload_selector(domain.instance_id, workload_id))
    return _build_routes(records, tasks, http_port=http_port, https_port=https_port)


def _runtime_of(domain: Domain) -> Runtime:
    if domain.runtime is None:
        raise ValueError("loading routes needs a domain with a runtime")
    return domain.runtime


def _build_routes(
    records: routing.Routable,
    listed: list[TaskState],
    *,
    http_port: int,
    https_port: int | None,
) -> dict[RouteKey, Route]:
    tasks = [task for task in listed if task.status == TaskStatus.RUNNING]
    by_run = {task.labels.get(labels.RUN, ""): task for task in tasks}
    tasks_of: dict[str, list[tuple[str, TaskId, Mapping[int, tuple[str, int]]]]] = {}
    paused = {run.id for run in records.active_runs if run.paused_at is not None}
    for run in records.active_runs:
        task = by_run.get(run.id)
        if task is not None and run.id not in paused:
            tasks_of.setdefault(run.workload_id, []).append((run.id, task.task_id, task.ports))
    for task in tasks:  # tasks without a run label, matched by workload only
        if labels.RUN not in task.labels and (wid := task.labels.get(labels.WORKLOAD)):
            tasks_of.setdefault(wid, []).append(("", task.task_id, task.ports))

    mapping: dict[RouteKey, Route] = {}
    service_ports = [http_port] if https_port is None else [http_port, https_port]
    for workload in records.workloads:
        if workload.type != "service" or workload.port is None:
            continue
        upstreams: list[Upstream] = []
        for _run_id, task_id, ports in sorted(tasks_of.get(workload.id, [])):
            published = ports.get(workload.port)
            if published is not None:
                inside = TaskPort(task_id, workload.port)
                upstreams.append(LoopbackAddress(published[0], published[1], inside))
        for listen in service_ports:
            mapping[(workload.id, listen)] = Route(workload.id, tuple(upstreams))
    for rule in records.rules:
        listen_port = gateway_port_for(rule.port, http_port=http_port, https_port=https_port)
        if listen_port is None:
            continue
        task_ports: tuple[Upstream, ...] = tuple(
            TaskPort(task_id, rule.target_port)
            for _run_id, task_id, _ports in sorted(tasks_of.get(rule.workload_id, []))
        )
        mapping[(rule.workload_id, listen_port)] = Route(rule.workload_id, task_ports)
    return mapping
