"""The measurements: each variant of each figure, one sample per call, cleaned up after.

Every timing starts right before the first request of the variant (`time.perf_counter`) and
ends when the client *observes* the condition, so berth's figures include the client polling
at `poll` intervals; the baselines poll the same way wherever they wait on something.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TypeVar

import httpx

from bench.engine import BENCH_LABEL, Json, container_body, listed_port, published_port
from bench.harness import BenchError, BerthBench, since
from bench.stats import CLI, ENGINE, Series
from berth.domain.labels import RUN as RUN_LABEL
from berth.domain.labels import WORKLOAD as WORKLOAD_LABEL
from berth.runtime.base import TaskSpec
from berth.runtime.docker.mapping import create_body
from berth.schemas.workloads import WorkloadCreate

SERVICE_COMMAND = "exec httpd -f -p 8080"
SERVICE_PORT = 8080
JOB_COMMAND = "true"

T = TypeVar("T")

BERTH = "berth"
BERTH_COMPARED = "berth, compared build"
ENGINE_SPEC = "engine API, berth's spec"
ENGINE_SPEC_BRIDGE = "engine API, berth's spec, default bridge"
ENGINE_SPEC_POLLED = "engine API, berth's spec, berth polled"

SERVICE_LABELS = {
    BERTH: "berth: POST /v1/compute → GET running_tasks=1",
    BERTH_COMPARED: "  the same, --compare-src build",
    ENGINE: "engine API: create+start → inspect Running",
    ENGINE_SPEC: "engine API, berth's container spec",
    ENGINE_SPEC_BRIDGE: "  the same on the default bridge",
    ENGINE_SPEC_POLLED: "  the same while berth answers polls",
    CLI: "docker CLI: run -d → inspect Running",
}
HTTP_LABELS = {
    BERTH: "berth: POST /v1/compute → HTTP answer",
    BERTH_COMPARED: "  the same, --compare-src build",
    ENGINE: "engine API: create+start → HTTP answer",
    ENGINE_SPEC: "engine API, berth's container spec",
    ENGINE_SPEC_BRIDGE: "  the same on the default bridge",
    ENGINE_SPEC_POLLED: "  the same while berth answers polls",
    CLI: "docker CLI: run -d -p → HTTP answer",
}
JOB_LABELS = {
    BERTH: "berth: POST /run → GET runs exit_code",
    BERTH_COMPARED: "  the same, --compare-src build",
    ENGINE: "engine API: create+start+wait",
    ENGINE_SPEC: "engine API, berth's container spec",
    ENGINE_SPEC_BRIDGE: "  the same on the default bridge",
    ENGINE_SPEC_POLLED: "  the same while berth answers polls",
    CLI: "docker CLI: run (attached) → exit",
}

FIGURES = {
    "service_running": ("service create → task running", SERVICE_LABELS),
    "service_http": ("service create → first HTTP response", HTTP_LABELS),
    "job_exit": ("job run → exit code recorded", JOB_LABELS),
}

SERVICE_STEPS = {
    "post": "POST /v1/compute answered",
    "run_created": "berth planned the run (run.created_at)",
    "engine_started": "engine started the container (run.started_at)",
    "task_running": "client saw running_tasks=1",
    "status_running": "client saw status=running",
    "http": "client got the first HTTP answer",
}
JOB_STEPS = {
    "post": "POST /run answered (run row exists)",
    "engine_started": "engine started the container (run.started_at)",
    "engine_finished": "container exited (run.finished_at)",
    "exit_recorded": "client saw exit_code in GET runs",
}


@dataclass
class Results:
    series: dict[str, dict[str, Series]] = field(
        default_factory=lambda: {
            fig: {v: Series() for v in labels} for fig, (_, labels) in FIGURES.items()
        }
    )
    breakdown: dict[str, dict[str, Series]] = field(
        default_factory=lambda: {
            "service create": {label: Series() for label in SERVICE_STEPS.values()},
            "job run": {label: Series() for label in JOB_STEPS.values()},
        }
    )


def _wall(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


@dataclass(kw_only=True, eq=False)
class Bench(BerthBench):
    use_cli: bool
    network: str
    """The bench's own network, standing for the user's in berth's container spec."""
    berth_variant: str = BERTH
    """The variant this bench's berth samples are recorded as (`BERTH_COMPARED` for a
    second server built from another source tree)."""
    request_timeout: ClassVar[float] = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.job_id: str | None = None
        self._last_steps: dict[str, float] = {}
        defaults = WorkloadCreate.model_fields
        self.cpu = float(defaults["cpu"].default)
        self.memory_mb = int(defaults["memory_mb"].default)

    def variants(self) -> list[str]:
        return [BERTH, ENGINE, ENGINE_SPEC, ENGINE_SPEC_BRIDGE, ENGINE_SPEC_POLLED] + (
            [CLI] if self.use_cli else []
        )

    # -- helpers ---------------------------------------------------------------------------

    async def _first_http(self, port: int, t0: float) -> float:
        async def probe() -> float | None:
            try:
                await self.http.get(f"http://127.0.0.1:{port}/")
            except httpx.TransportError:
                return None
            return since(t0)

        return await self.until(probe, f"an HTTP answer on 127.0.0.1:{port}")

    def _spec_body(self, command: str, ports: tuple[int, ...], *, bridge: bool = False) -> Json:
        """The create body berth's Docker driver would send for this workload: on a network
        of its own like a user's (the bench's), or with `bridge` on the engine's default
        bridge, which tells the per-user network's cost apart from the limits'."""
        spec = TaskSpec(
            name="unused",
            image=self.image,
            command=["/bin/sh", "-c", command],
            env={},
            labels={BENCH_LABEL: "1"},
            cpu=self.cpu,
            memory_mb=self.memory_mb,
            ports=ports,
            network=None if bridge else self.network,
        )
        return create_body(spec)

    def _plain_body(self, command: str, ports: tuple[int, ...]) -> Json:
        """What `docker run -d [-p 127.0.0.1::PORT] IMAGE /bin/sh -c COMMAND` sends."""
        return container_body(self.image, command, {port: "" for port in ports})

    async def _polling_berth(self, path: str, work: Awaitable[T]) -> T:
        """Run `work` while GETting `path` from berth every poll, as a berth sample's client
        does meanwhile: what answering those polls costs the machine, and so the engine."""
        done = asyncio.Event()

        async def poll() -> None:
            while not done.is_set():
                started = time.perf_counter()
                response = await self.api.get(path)
                if response.status_code != 200:
                    raise BenchError(f"GET {path} answered {response.status_code}")
                with contextlib.suppress(TimeoutError):
                    left = self.poll - (time.perf_counter() - started)
                    await asyncio.wait_for(done.wait(), max(0.0, left))

        poller = asyncio.create_task(poll())
        try:
            return await work
        finally:
            done.set()
            await poller

    # -- service: create → running, create → first HTTP answer ---------------------------

    async def service(self, variant: str, index: int, results: Results | None) -> None:
        measure = {
            self.berth_variant: self._berth_service,
            ENGINE: lambda: self._engine_service(
                self._plain_body(SERVICE_COMMAND, (SERVICE_PORT,))
            ),
            ENGINE_SPEC: lambda: self._engine_service(
                self._spec_body(SERVICE_COMMAND, (SERVICE_PORT,))
            ),
            ENGINE_SPEC_BRIDGE: lambda: self._engine_service(
                self._spec_body(SERVICE_COMMAND, (SERVICE_PORT,), bridge=True)
            ),
            ENGINE_SPEC_POLLED: lambda: self._polling_berth(
                f"/v1/compute/{self.job_id}",
                self._engine_service(self._spec_body(SERVICE_COMMAND, (SERVICE_PORT,))),
            ),
            CLI: self._cli_service,
        }[variant]
        try:
            running, http = await measure()
        except (BenchError, httpx.HTTPError) as exc:
            if results is not None:
                message = f"iteration {index}: {exc}"
                results.series["service_running"][variant].errors.append(message)
                results.series["service_http"][variant].errors.append(message)
            print(f"  ! service/{variant}: {exc}", flush=True)
            return
        if results is not None:
            results.series["service_running"][variant].samples.append(running)
            results.series["service_http"][variant].samples.append(http)
            if variant == BERTH:
                for step, value in self._last_steps.items():
                    results.breakdown["service create"][SERVICE_STEPS[step]].samples.append(value)

    async def _berth_service(self) -> tuple[float, float]:
        body = {
            "name": f"bench-svc-{uuid.uuid4().hex[:8]}",
            "type": "service",
            "image": self.image,
            "command": SERVICE_COMMAND,
            "port": SERVICE_PORT,
        }
        t0_wall = time.time()
        t0 = time.perf_counter()
        response = await self.api.post("/v1/compute", json=body)
        post = since(t0)
        if response.status_code != 201:
            raise BenchError(f"create answered {response.status_code}: {response.text}")
        workload_id = str(response.json()["id"])
        try:
            # Like a user, look for the service's port only once berth says its task runs.
            task_running, workload = await self.watch(
                workload_id, t0, lambda b: b["running_tasks"] >= 1, f"a task of {workload_id}"
            )
            run: Json = next((r for r in workload["recent_runs"] if r["status"] == "running"), {})
            (status_running, _), http = await asyncio.gather(
                self.watch(
                    workload_id,
                    t0,
                    lambda b: b["status"] == "running",
                    f"status running of {workload_id}",
                ),
                self._berth_http(workload_id, t0),
            )
        finally:
            await self.delete_workload(workload_id)
        steps = {"post": post, "task_running": task_running, "status_running": status_running}
        steps["http"] = http
        for key, stamp in (("run_created", "created_at"), ("engine_started", "started_at")):
            at = _wall(run.get(stamp))
            if at is not None:
                steps[key] = at - t0_wall
        self._last_steps = steps
        return task_running, http

    async def _berth_http(self, workload_id: str, t0: float) -> float:
        async def port_probe() -> int | None:
            for container in await self.engine.containers(f"{WORKLOAD_LABEL}={workload_id}"):
                port = listed_port(container, SERVICE_PORT)
                if port is not None:
                    return port
            return None

        port = await self.until(port_probe, f"service {workload_id}'s published port")
        return await self._first_http(port, t0)

    async def _engine_service(self, body: Json) -> tuple[float, float]:
        t0 = time.perf_counter()
        container_id = await self.engine.create(body)
        try:
            await self.engine.start(container_id)

            async def probe() -> Json | None:
                data = await self.engine.inspect(container_id)
                if data["State"]["Running"]:
                    return data
                if data["State"]["Status"] in ("exited", "dead"):
                    raise BenchError(f"baseline container exited: {data['State']}")
                return None

            data = await self.until(probe, "the baseline container to run")
            running = since(t0)
            port = published_port(data, SERVICE_PORT)
            if port is None:
                raise BenchError("the baseline container has no published port")
            return running, await self._first_http(port, t0)
        finally:
            await self.engine.remove(container_id)

    async def _cli_service(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        container_id = await self.docker(
            "run",
            "-d",
            "--label",
            f"{BENCH_LABEL}=1",
            "-p",
            f"127.0.0.1::{SERVICE_PORT}",
            self.image,
            "/bin/sh",
            "-c",
            SERVICE_COMMAND,
        )
        try:

            async def probe() -> bool | None:
                out = await self.docker("inspect", "-f", "{{.State.Running}}", container_id)
                return True if out == "true" else None

            await self.until(probe, "the CLI container to run")
            running = since(t0)
            mapping = await self.docker("port", container_id, f"{SERVICE_PORT}/tcp")
            port = int(mapping.splitlines()[0].rsplit(":", 1)[1])
            return running, await self._first_http(port, t0)
        finally:
            await self.engine.remove(container_id)

    # -- job: run → exit code recorded -----------------------------------------------------

    async def create_job(self) -> None:
        body = {
            "name": f"bench-job-{uuid.uuid4().hex[:8]}",
            "type": "job",
            "image": self.image,
            "command": JOB_COMMAND,
        }
        response = await self.api.post("/v1/compute", json=body)
        if response.status_code != 201:
            raise BenchError(f"job create answered {response.status_code}: {response.text}")
        self.job_id = str(response.json()["id"])
        runs = response.json()["recent_runs"]
        if runs:
            await self._berth_run_recorded(runs[0]["id"], time.perf_counter())

    async def job(self, variant: str, index: int, results: Results | None) -> None:
        measure = {
            self.berth_variant: self._berth_job,
            ENGINE: lambda: self._engine_job(self._plain_body(JOB_COMMAND, ())),
            ENGINE_SPEC: lambda: self._engine_job(self._spec_body(JOB_COMMAND, ())),
            ENGINE_SPEC_BRIDGE: lambda: self._engine_job(
                self._spec_body(JOB_COMMAND, (), bridge=True)
            ),
            ENGINE_SPEC_POLLED: lambda: self._polling_berth(
                f"/v1/compute/{self.job_id}/runs",
                self._engine_job(self._spec_body(JOB_COMMAND, ())),
            ),
            CLI: self._cli_job,
        }[variant]
        try:
            value = await measure()
        except (BenchError, httpx.HTTPError) as exc:
            if results is not None:
                results.series["job_exit"][variant].errors.append(f"iteration {index}: {exc}")
            print(f"  ! job/{variant}: {exc}", flush=True)
            return
        if results is not None:
            results.series["job_exit"][variant].samples.append(value)
            if variant == BERTH:
                for step, v in self._last_steps.items():
                    results.breakdown["job run"][JOB_STEPS[step]].samples.append(v)

    async def _berth_run_recorded(self, run_id: str, t0: float) -> tuple[float, dict[str, Any]]:
        async def probe() -> tuple[float, dict[str, Any]] | None:
            response = await self.api.get(f"/v1/compute/{self.job_id}/runs", params={"limit": 5})
            now = since(t0)
            if response.status_code != 200:
                raise BenchError(f"GET runs answered {response.status_code}: {response.text}")
            run = next((r for r in response.json()["runs"] if r["id"] == run_id), None)
            if run is None or run["exit_code"] is None:
                if run is not None and run["status"] in ("failed", "stopped", "timed_out"):
                    raise BenchError(f"run {run_id} {run['status']}: {run['status_reason']}")
                return None
            if run["exit_code"] != 0:
                raise BenchError(f"run {run_id} exited {run['exit_code']}")
            return now, run

        result = await self.until(probe, f"run {run_id}'s exit")
        # Let berth finish the run (it removes the task after recording) before going on.
        await self.gone(f"{RUN_LABEL}={run_id}")
        return result

    async def _berth_job(self) -> float:
        t0_wall = time.time()
        t0 = time.perf_counter()
        response = await self.api.post(f"/v1/compute/{self.job_id}/run")
        post = since(t0)
        if response.status_code != 201:
            raise BenchError(f"run answered {response.status_code}: {response.text}")
        recorded, run = await self._berth_run_recorded(str(response.json()["id"]), t0)
        steps = {"post": post, "exit_recorded": recorded}
        for key, stamp in (("engine_started", "started_at"), ("engine_finished", "finished_at")):
            at = _wall(run.get(stamp))
            if at is not None:
                steps[key] = at - t0_wall
        self._last_steps = steps
        return recorded

    async def _engine_job(self, body: Json) -> float:
        t0 = time.perf_counter()
        container_id = await self.engine.create(body)
        try:
            await self.engine.start(container_id)
            code = await self.engine.wait(container_id)
            elapsed = since(t0)
        finally:
            await self.engine.remove(container_id)
        if code != 0:
            raise BenchError(f"baseline job exited {code}")
        return elapsed

    async def _cli_job(self) -> float:
        name = f"berth-bench-{uuid.uuid4().hex[:12]}"
        t0 = time.perf_counter()
        try:
            await self.docker(
                "run",
                "--name",
                name,
                "--label",
                f"{BENCH_LABEL}=1",
                self.image,
                "/bin/sh",
                "-c",
                JOB_COMMAND,
            )
            return since(t0)
        finally:
            await self.engine.remove(name)
