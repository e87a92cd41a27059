"""The Kubernetes driver: the runtime contract over the Kubernetes API.

Each task is a Pod (see `mapping` for the objects and names, `status` for reading pods
back). berth stays the controller: pods never restart by themselves (`restartPolicy:
Never`), and berth's own labels on them are how a restarted berth finds what exists.

- `create` makes the pod behind a scheduling gate (`CREATED`); `start` lifts it; `launch`
  makes it without one. Both return once the container runs or has ended, or raise (and
  delete the pod) when the cluster will not run it: `ImageNotFound` for an image it cannot
  pull, `InvalidTaskSpec` for a pod no node can take or a container it cannot create.
- `stop` ends the pod's containers and keeps the pod, so its exit code and logs can still
  be read: it sets the pod's `activeDeadlineSeconds`, and the kubelet stops the containers
  (SIGTERM, SIGKILL after the pod's grace period). `remove` deletes the pod at once and its
  environment Secret; the PersistentVolumeClaims stay until `remove_volumes`.
- API errors are translated here into `berth.runtime.base`'s error tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncGenerator, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from berth.runtime.base import (
    Capacity,
    ExecResult,
    ExecSpec,
    ImageNotFound,
    InteractiveSession,
    InvalidTaskSpec,
    LogLine,
    PortUnreachable,
    ProcessSession,
    RuntimeDriverError,
    TaskEvent,
    TaskId,
    TaskNotFound,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from berth.runtime.kubernetes.client import (
    MERGE_PATCH,
    ApiClient,
    Json,
    api_message,
    unexpected,
)
from berth.runtime.kubernetes.config import ClusterConfig, load_config
from berth.runtime.kubernetes.execs import TERMINAL_ENV, KubernetesExec
from berth.runtime.kubernetes.images import ImageProbe
from berth.runtime.kubernetes.kubelet import Kubelets
from berth.runtime.kubernetes.logs import CriLogDecoder, LogDecoder, since_param
from berth.runtime.kubernetes.mapping import (
    CONTAINER,
    PORTS_ANNOTATION,
    namespace_of,
    pod_manifest,
    split_task_id,
    validate,
)
from berth.runtime.kubernetes.objects import Objects
from berth.runtime.kubernetes.ports import Publisher, connect_pod_ip, port_forward
from berth.runtime.kubernetes.sessions import KubernetesProcess, KubernetesTerminal
from berth.runtime.kubernetes.status import (
    IMAGE_FAILURES,
    is_gated,
    task_state,
    unschedulable,
    waiting_failure,
)
from berth.runtime.kubernetes.usage import Usage
from berth.runtime.kubernetes.watch import Expired, list_pods, pod_events, watch_pod

START_TIMEOUT = 300.0
"""How long a launch waits for the container to run (an image pull may take this long)."""
START_WATCH_SECONDS = 10.0
"""How long one watch of a starting pod lasts before the pod is read again."""
FOLLOW_END_TIMEOUT = 10.0
"""How long a followed log that ended waits for the pod's status to show the end."""
STOP_MARGIN = 30.0
"""Beyond the pod's grace period, how long a stop waits for the kubelet to end it."""


class KubernetesRuntime:
    """`Runtime` over the API server named by `kubeconfig` (None: the in-cluster service
    account, else `~/.kube/config`; see `config.load_config`).

    `namespace` holds tasks without a tenant network; `stop_grace_seconds` becomes each
    pod's termination grace period; `volume_size_gb` sizes each claim.
    """

    def __init__(
        self,
        kubeconfig: str | Path | None = None,
        *,
        namespace: str = "berth",
        stop_grace_seconds: float = 10.0,
        volume_size_gb: float = 10.0,
        config: ClusterConfig | None = None,
    ) -> None:
        self._api = ApiClient(config or load_config(kubeconfig))
        self.namespace = namespace
        self._grace = max(0, round(stop_grace_seconds))
        self._objects = Objects(self._api, volume_size_gb=volume_size_gb)
        self._images = ImageProbe(self._api, self._objects, namespace)
        self._kubelets = Kubelets(self._api)
        self._usage = Usage(self._api, self._kubelets)
        self._publisher = Publisher()

    # -- reading pods ----------------------------------------------------------------------

    def _path(self, task: TaskId) -> tuple[str, str, str]:
        """(namespace, pod, API path) of a task id; `TaskNotFound` for one that names none."""
        parts = split_task_id(task)
        if parts is None:
            raise TaskNotFound(f"task {task} does not exist")
        namespace, pod = parts
        return namespace, pod, f"/api/v1/namespaces/{namespace}/pods/{pod}"

    async def _pod(self, task: TaskId) -> Json | None:
        parts = split_task_id(task)
        if parts is None:
            return None
        return await self._api.get_json(self._path(task)[2])

    async def _state(self, pod: Json) -> TaskState:
        """The pod's state with its ports published on loopback while it runs."""
        state = task_state(pod)
        metadata: Json = pod.get("metadata") or {}
        ports_text = str((metadata.get("annotations") or {}).get(PORTS_ANNOTATION) or "")
        if state.status is TaskStatus.EXITED and ports_text:
            await self._publisher.unpublish(state.task_id)  # its pod ended: nothing to relay to
        if state.status is not TaskStatus.RUNNING or not ports_text or state.started_at is None:
            return state
        ports = {}
        uid = str(metadata.get("uid"))
        for port in (int(p) for p in ports_text.split(",") if p.isdigit()):

            async def opener(port: int = port) -> socket.socket:
                return await self.open_port(state.task_id, port)

            ports[port] = await self._publisher.publish(state.task_id, uid, port, opener)
        return replace(state, ports=ports)

    async def inspect(self, task_id: TaskId) -> TaskState | None:
        pod = await self._pod(task_id)
        if pod is None:
            # Deleted behind berth's back (an operator, a node drained): its listeners go too.
            await self._publisher.unpublish(task_id)
            return None
        return await self._state(pod)

    async def list_tasks(self, selector: Mapping[str, str]) -> list[TaskState]:
        pods, _ = await list_pods(self._api, selector)
        return [await self._state(pod) for pod in pods]

    # -- images ------------------------------------------------------------------------------

    async def ping(self) -> None:
        response = await self._api.request("GET", "/version")
        if response.status_code != 200:
            raise self._api.unavailable(RuntimeError(f"/version answered {response.status_code}"))

    async def ensure_image(self, image: str) -> None:
        await self._images.ensure(image)

    # -- launching ---------------------------------------------------------------------------

    async def launch(self, spec: TaskSpec, *, details: bool = True) -> TaskState:
        pod = await self._create_pod(spec, gated=False)
        if is_gated(pod):
            return await self.start(task_state(pod).task_id, details=details)
        return await self._wait_started(pod)

    async def create(self, spec: TaskSpec) -> TaskState:
        return await self._state(await self._create_pod(spec, gated=True))

    async def _create_pod(self, spec: TaskSpec, *, gated: bool) -> Json:
        """Make the task's pod (and what it needs), or find the one already named so."""
        validate(spec)
        capacity = await self.capacity()
        if spec.cpu > capacity.cpus or spec.memory_mb * 2**20 > capacity.memory_bytes:
            raise InvalidTaskSpec(
                f"task '{spec.name}' asks for {spec.cpu:g} CPUs and {spec.memory_mb} MB; the "
                f"largest node offers {capacity.cpus:g} CPUs and "
                f"{capacity.memory_bytes // 2**20} MB"
            )
        namespace = namespace_of(spec, self.namespace)
        path = f"/api/v1/namespaces/{namespace}/pods"
        existing = await self._api.get_json(f"{path}/{spec.name}")
        if existing is not None:
            return existing
        await self._objects.ensure_namespace(namespace, spec.network_labels)
        await self._objects.ensure_claims(spec, namespace)
        if spec.env:
            await self._objects.put_secret(spec, namespace)
        manifest = pod_manifest(spec, namespace, grace_seconds=self._grace, gated=gated)
        response = await self._api.request("POST", path, body=manifest)
        if response.status_code == 409:
            existing = await self._api.get_json(f"{path}/{spec.name}")
            if existing is None:
                raise RuntimeDriverError(f"task '{spec.name}' was removed while being created")
            return existing
        if response.status_code in (400, 422):
            await self._objects.delete_secret(namespace, spec.name)
            raise InvalidTaskSpec(
                f"the cluster refused task '{spec.name}': {api_message(response)}"
            )
        if response.status_code == 403 and "exceeded quota" in api_message(response):
            # A ResourceQuota of the namespace, not a missing permission: the run fails with
            # the quota's own words (retrying would be refused the same way).
            await self._objects.delete_secret(namespace, spec.name)
            raise InvalidTaskSpec(
                f"the namespace's quota refused task '{spec.name}': {api_message(response)}; "
                f"the cluster's operator sets it (kubectl describe resourcequota -n {namespace})"
            )
        if response.status_code != 201:
            raise unexpected(f"creating task '{spec.name}'", response)
        pod: Json = response.json()
        if spec.env:
            await self._objects.own_secret(namespace, pod)
        return pod

    async def start(self, task_id: TaskId, *, details: bool = True) -> TaskState:
        pod = await self._pod(task_id)
        if pod is None:
            raise TaskNotFound(f"task {task_id} does not exist")
        if not is_gated(pod):
            return await self._state(pod)
        gates = [g for g in pod["spec"].get("schedulingGates") or [] if g.get("name")]
        remaining = [g for g in gates if g["name"] != "dev.berth/start"]
        response = await self._api.request(
            "PATCH",
            self._path(task_id)[2],
            body={"spec": {"schedulingGates": remaining or None}},
            headers=MERGE_PATCH,
        )
        if response.status_code == 404:
            raise TaskNotFound(f"task {task_id} was removed while being started")
        if response.status_code != 200:
            raise unexpected(f"starting task {task_id}", response)
        return await self._wait_started(response.json())

    async def _wait_started(self, pod: Json) -> TaskState:
        """Follow the pod (a watch on it, read again whenever the watch ends) until its
        container runs or has ended; refused pods are deleted and raised. A watch sees the
        start the moment the kubelet reports it, where polling would see it a poll late."""
        state = task_state(pod)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while True:
            if (started := await self._started(pod)) is not None:
                return started
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise RuntimeDriverError(
                    f"task '{state.name}' did not start within {START_TIMEOUT:g}s"
                )
            try:
                async with asyncio.timeout(min(remaining, START_WATCH_SECONDS)):
                    async with contextlib.aclosing(watch_pod(self._api, pod)) as changes:
                        async for kind, changed in changes:
                            if kind == "DELETED":
                                break
                            if kind == "BOOKMARK":
                                continue
                            pod = changed
                            if (started := await self._started(pod)) is not None:
                                return started
            except (TimeoutError, Expired):
                pass
            fresh = await self._pod(state.task_id)
            if fresh is None:
                raise TaskNotFound(f"task '{state.name}' was removed while being started")
            pod = fresh

    async def _started(self, pod: Json) -> TaskState | None:
        """The pod's state once its container runs or has ended, else None; a pod the
        cluster will not run is deleted and its refusal raised."""
        state = task_state(pod)
        failure = waiting_failure(pod)
        if failure is not None:
            await self.remove(state.task_id)
            reason, message = failure
            if reason in IMAGE_FAILURES:
                image = pod["spec"]["containers"][0]["image"]
                raise ImageNotFound(f"image '{image}' cannot be pulled: {message}")
            raise InvalidTaskSpec(f"the cluster cannot run task '{state.name}': {message}")
        refusal = unschedulable(pod)
        if refusal is not None and not _waits_for_claims(refusal):
            await self.remove(state.task_id)
            raise InvalidTaskSpec(f"no node can run task '{state.name}': {refusal}")
        if state.status is TaskStatus.EXITED or state.started_at is not None:
            return await self._state(pod)
        return None

    # -- stopping ----------------------------------------------------------------------------

    async def stop(self, task_id: TaskId, *, grace_seconds: float) -> None:
        """The pod's grace period (set at creation) applies, not `grace_seconds`: Kubernetes
        cannot shorten it for a pod it is not deleting."""
        pod = await self._pod(task_id)
        if pod is None or is_gated(pod) or task_state(pod).status is TaskStatus.EXITED:
            return
        response = await self._api.request(
            "PATCH",
            self._path(task_id)[2],
            body={"spec": {"activeDeadlineSeconds": 1}},
            headers=MERGE_PATCH,
        )
        if response.status_code == 404:
            return
        if response.status_code != 200:
            raise unexpected(f"stopping task {task_id}", response)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace + STOP_MARGIN
        while loop.time() < deadline:
            current = await self._pod(task_id)
            if current is None or task_state(current).status is TaskStatus.EXITED:
                await self._publisher.unpublish(task_id)
                return
            await asyncio.sleep(0.1)
        raise RuntimeDriverError(
            f"task {task_id} did not stop within {self._grace + STOP_MARGIN:g}s"
        )

    async def remove(self, task_id: TaskId) -> None:
        parts = split_task_id(task_id)
        if parts is None:
            return
        namespace, pod = parts
        response = await self._api.request(
            "DELETE",
            self._path(task_id)[2],
            body={"gracePeriodSeconds": 0, "propagationPolicy": "Background"},
        )
        # Gone already (404) still closes its listeners: the pod may have been deleted by
        # someone else, and a listener relaying to nothing must not outlive it.
        await self._publisher.unpublish(task_id)
        if response.status_code not in (200, 404):
            raise unexpected(f"removing task {task_id}", response)
        await self._objects.delete_secret(namespace, pod)

    # -- streams -----------------------------------------------------------------------------

    async def logs(
        self, task_id: TaskId, *, follow: bool, since: datetime | None = None
    ) -> AsyncGenerator[LogLine, None]:
        pod = await self._pod(task_id)
        if pod is None:
            raise TaskNotFound(f"task {task_id} does not exist")
        state = task_state(pod)
        if state.status is TaskStatus.EXITED and state.started_at is None:
            # The container never ran: the runtime's reason is all the output there is.
            if state.error and state.finished_at is not None:
                yield LogLine(timestamp=state.finished_at, stream="stderr", message=state.error)
            return
        if not follow:
            lines = await self._logs_from_kubelet(pod, since)
            if lines is not None:
                for line in lines:
                    yield line
                return
        params = {"container": CONTAINER, "timestamps": "true", "follow": str(follow).lower()}
        if since is not None:
            params["sinceTime"] = since_param(since)
        decoder = LogDecoder(since)
        async with self._api.stream(self._path(task_id)[2] + "/log", params=params) as response:
            if response.status_code == 404:
                raise TaskNotFound(f"task {task_id} does not exist")
            if response.status_code == 400:
                return  # Not started yet: no output.
            if response.status_code != 200:
                await response.aread()
                raise unexpected(f"reading logs of task {task_id}", response)
            async for chunk in response.aiter_raw():
                for line in decoder.feed(chunk):
                    yield line
        for line in decoder.finish():
            yield line
        if follow:
            await self._until_ended(task_id)

    async def _until_ended(self, task_id: TaskId) -> None:
        """Wait (bounded) until the pod's status says what the end of a followed log said:
        the kubelet closes the log as the container ends, and reports the end a moment later."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FOLLOW_END_TIMEOUT
        delay = 0.02
        while loop.time() < deadline:
            pod = await self._pod(task_id)
            if pod is None or task_state(pod).status is TaskStatus.EXITED:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    async def _logs_from_kubelet(self, pod: Json, since: datetime | None) -> list[LogLine] | None:
        """The container's log file from its kubelet (stdout and stderr apart), or None when
        the kubelet does not give it (no permission, no file yet)."""
        metadata: Json = pod.get("metadata") or {}
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return None
        folder = f"{metadata.get('namespace')}_{metadata.get('name')}_{metadata.get('uid')}"
        response = await self._kubelets.get(str(node), f"/logs/pods/{folder}/{CONTAINER}/0.log")
        if response.status_code != 200:
            return None
        decoder = CriLogDecoder(since)
        return [*decoder.feed(response.content), *decoder.finish()]

    async def events(self, selector: Mapping[str, str]) -> AsyncGenerator[TaskEvent, None]:
        async for event in pod_events(self._api, selector):
            yield event

    # -- commands in tasks -------------------------------------------------------------------

    async def _running(self, task_id: TaskId) -> tuple[Json, KubernetesExec]:
        pod = await self._pod(task_id)
        if pod is None:
            raise TaskNotFound(f"task {task_id} does not exist")
        state = task_state(pod)
        if state.status is not TaskStatus.RUNNING or state.started_at is None:
            raise TaskNotFound(f"task {task_id} is not running")
        namespace, name, _ = self._path(task_id)
        return pod, KubernetesExec(self._api, task_id, namespace, name)

    async def exec(self, task_id: TaskId, spec: ExecSpec) -> ExecResult:
        _, execs = await self._running(task_id)
        return await execs.run(spec)

    async def open_terminal(
        self, task_id: TaskId, argv: list[str], *, cols: int, rows: int
    ) -> InteractiveSession:
        _, execs = await self._running(task_id)
        channel = await execs.start(argv, TERMINAL_ENV, stdin=True, tty=True)
        await channel.resize(cols=cols, rows=rows)
        return KubernetesTerminal(execs, channel)

    async def open_process(self, task_id: TaskId, argv: list[str]) -> ProcessSession:
        _, execs = await self._running(task_id)
        channel = await execs.start(argv, {}, stdin=True, tty=False)
        return KubernetesProcess(execs, channel)

    async def open_port(self, task_id: TaskId, port: int) -> socket.socket:
        """The pod's IP when it answers there, else its loopback through a port-forward."""
        if not 1 <= port <= 65535:
            raise PortUnreachable(f"port {port} is not a TCP port")
        pod, _ = await self._running(task_id)
        address = str((pod.get("status") or {}).get("podIP") or "")
        if address:
            sock = await connect_pod_ip(address, port)
            if sock is not None:
                return sock
        namespace, name, _ = self._path(task_id)
        return await port_forward(self._api, namespace, name, port)

    # -- usage, volumes, networks ------------------------------------------------------------

    async def capacity(self) -> Capacity:
        return await self._usage.capacity()

    async def memory_usage(self, task_id: TaskId) -> int | None:
        pod = await self._pod(task_id)
        if pod is None or task_state(pod).status is not TaskStatus.RUNNING:
            return None
        return await self._usage.memory_usage(pod)

    async def volume_usage(self, selector: Mapping[str, str]) -> dict[str, int]:
        claims = await self._objects.claims(selector)
        nodes = {node for node in await self._objects.nodes()}
        sizes = await self._usage.claim_sizes(nodes)
        return {volume: sizes.get((namespace, claim), 0) for namespace, claim, volume in claims}

    async def remove_volumes(self, selector: Mapping[str, str]) -> None:
        await self._objects.remove_claims(selector)

    async def remove_networks(self, selector: Mapping[str, str]) -> None:
        await self._objects.remove_namespaces(selector)

    async def remove_namespace(self, name: str) -> None:
        """Delete one namespace and everything in it (what a test's clean-up uses)."""
        await self._objects.delete_namespace(name)

    async def close(self) -> None:
        await self._publisher.close()
        await self._api.close()


def _waits_for_claims(refusal: str) -> bool:
    """Whether the scheduler only waits for the pod's claims to be bound (which resolves)."""
    return "PersistentVolumeClaim" in refusal
