"""`python -m bench.wake`: wake from zero and create → first served request, through the gateway.

Two figures, each next to the container engine in the same run (ratios of medians):

- **wake from zero**: a service that scales to zero, put to sleep with `POST /stop` (status
  `stopped`, no task running, its standby task created), gets one `GET /` through berth's
  HTTP gateway (`Host: <id>.localhost`); the gateway holds it while the service wakes. Timed
  until its `200`. Baseline: `docker start` of a stopped container of the same image and
  command, then `GET` on its published port every poll until the first `200`.
- **create → first served request**: `POST /v1/compute` (a new service each round), then
  `GET` through the gateway every poll until `200`. Baseline: `docker run -d -p ...`, then `GET`
  on the published port every poll until `200`.

Both baselines run *the same container* as berth's task: besides image and command, the
HostConfig fields in `SAME_AS_TASK` (the user's network, init, memory and CPU limits, pids
limit, no-new-privileges, dropped capabilities, cgroup namespace, log cap) are copied from
the service's task, so a ratio is what berth adds, not what its confinement costs the engine
(on a plain container on the default bridge, `docker start` is about 15-20% faster).
The `docker` CLI is the baseline (what the issue's targets name); the raw Engine API (the
same `start`, or `create`+`start`, without the CLI process) is shown as a stricter reference.
Output: a table on stdout and `bench/results/wake.json`. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.engine import BENCH_LABEL, Engine, Json, container_body, run_flags
from bench.harness import (
    BenchError,
    BerthBench,
    Rounds,
    add_run_arguments,
    any_errors,
    check_run_arguments,
    engine_line,
    git_describe,
    run_servers,
    since,
)
from bench.stats import CLI, ENGINE, Series, figure_record, render_target_table
from berth.domain.labels import WORKLOAD as WORKLOAD_LABEL
from berth.testing.server import BerthServer, free_port

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "wake.json"
SERVICE_PORT = 8080
SERVICE_COMMAND = "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www"
TARGET = 1.3
"""berth's p50 over the docker CLI baseline's p50, at most (issue 5, "Performance")."""

SAME_AS_TASK = (
    "NetworkMode",
    "Init",
    "Memory",
    "MemorySwap",
    "NanoCpus",
    "CpuQuota",
    "CpuPeriod",
    "PidsLimit",
    "SecurityOpt",
    "CapDrop",
    "CgroupnsMode",
    "LogConfig",
)
"""The task settings the baseline containers copy from berth's task (HostConfig fields)."""

BERTH = "berth"
WAKE_LABELS = {
    BERTH: "berth: held GET through the gateway → 200",
    CLI: "docker start, same container → GET 200",
    ENGINE: "engine API start → GET 200 (reference)",
}
CREATE_LABELS = {
    BERTH: "berth: POST /v1/compute → gateway GET 200",
    CLI: "docker run -d -p, same container → GET 200",
    ENGINE: "engine API create+start → GET 200 (ref.)",
}
FIGURES = {
    "wake": ("wake from zero → first 200", WAKE_LABELS),
    "create": ("create → first served request (200)", CREATE_LABELS),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.wake",
        description="berth's wake from zero and create → first request next to docker.",
    )
    add_run_arguments(parser, iterations=8, poll_ms=10.0, output=DEFAULT_OUTPUT)
    parser.add_argument(
        "--settle-ms",
        type=float,
        default=0.0,
        help="untimed pause between berth reporting the service stopped and the timed GET"
        " (0: the GET follows at once)",
    )
    parser.add_argument(
        "--no-anchor",
        action="store_true",
        help="no long-running service of the same user beside the samples (berth then"
        " removes and re-creates the user's network around each stop/start and create)",
    )
    args = parser.parse_args(argv)
    check_run_arguments(parser, args)
    return args


@dataclass(kw_only=True, eq=False)
class WakeBench(BerthBench):
    gateway_port: int
    settle: float = 0.0
    """Seconds between berth saying "stopped" and the timed wake request (untimed)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.gateway = f"http://127.0.0.1:{self.gateway_port}/"
        self.service_id = ""
        self.same_as: Json = {}
        self.baseline_id = ""
        self.baseline_port = 0

    # -- helpers -------------------------------------------------------------------------

    async def _first_200(self, url: str, t0: float, host: str | None = None) -> float:
        """GET `url` every poll until a 200; seconds since t0. A request the gateway holds
        is waited for (up to the deadline), not abandoned."""
        headers = {"Host": host} if host else None
        deadline = time.perf_counter() + self.timeout
        last = "no answer"

        async def probe() -> float | None:
            nonlocal last
            remaining = max(0.1, deadline - time.perf_counter())
            try:
                response = await self.http.get(url, headers=headers, timeout=remaining)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                return None
            if response.status_code == 200:
                return since(t0)
            last = f"HTTP {response.status_code}: {response.text[:200]}"
            return None

        try:
            return await self.until(probe, f"a 200 from {host or url}")
        except BenchError as exc:
            raise BenchError(f"{exc} (last: {last})") from None

    def _baseline_body(self, host_port: int) -> Json:
        """What `docker create` sends for the same container as berth's task (`same_as`):
        its image and command, and the task's network and confinement (see `SAME_AS_TASK`),
        with its port published on 127.0.0.1:`host_port`."""
        ports = {SERVICE_PORT: str(host_port)}
        return container_body(self.image, SERVICE_COMMAND, ports, self.same_as)

    async def _create_service(self, name: str, *, scale_to_zero: bool = False) -> str:
        body = {
            "name": name,
            "type": "service",
            "image": self.image,
            "port": SERVICE_PORT,
            "command": SERVICE_COMMAND,
            "replicas": 1,
        }
        if scale_to_zero:
            # Put to sleep by hand (POST /stop) each round, never by the idle timer.
            body |= {"scale_to_zero": True, "idle_timeout_seconds": 86400}
        response = await self.api.post("/v1/compute", json=body)
        if response.status_code != 201:
            raise BenchError(f"create answered {response.status_code}: {response.text}")
        return str(response.json()["id"])

    # -- set-up: the service to wake and the baseline container --------------------------

    async def setup(self) -> None:
        self.service_id = await self._create_service(
            f"bench-wake-{uuid.uuid4().hex[:8]}", scale_to_zero=True
        )
        await self._first_200(self.gateway, time.perf_counter(), f"{self.service_id}.localhost")
        # "The same container" (issue 5): the baselines run what berth's task runs, on the
        # same network with the same limits and confinement, so the ratio is berth's own cost.
        task = (await self.engine.containers(f"{WORKLOAD_LABEL}={self.service_id}"))[0]
        host_config = (await self.engine.inspect(task["Id"]))["HostConfig"]
        self.same_as = {k: host_config[k] for k in SAME_AS_TASK if host_config.get(k)}
        # One container, created once, started and stopped every round; its host port is
        # pinned so it stays the same across restarts, as the service's URL does.
        self.baseline_port = free_port()
        self.baseline_id = await self.engine.create(
            self._baseline_body(self.baseline_port), name=f"berth-bench-wake-{os.getpid()}"
        )

    # -- wake from zero ------------------------------------------------------------------

    async def _berth_asleep(self) -> None:
        response = await self.api.post(f"/v1/compute/{self.service_id}/stop")
        if response.status_code != 200:
            raise BenchError(f"stop answered {response.status_code}: {response.text}")

        await self.watch(
            self.service_id,
            time.perf_counter(),
            lambda body: body["status"] == "stopped" and body["running_tasks"] == 0,
            f"{self.service_id} to be stopped",
        )
        label = f"{WORKLOAD_LABEL}={self.service_id}"

        async def asleep() -> bool | None:
            # Asleep as a scaled-to-zero service is after a while: no task running, the
            # standby task created (see docs/api.md, "Scale to zero").
            states = [c["State"] for c in await self.engine.containers(label)]
            quiet = not [state for state in states if state not in ("exited", "created")]
            return True if quiet and "created" in states else None

        await self.until(asleep, f"{self.service_id} to sleep with its standby task")

    async def wake_berth(self) -> float:
        await self._berth_asleep()
        await asyncio.sleep(self.settle)
        host = f"{self.service_id}.localhost"
        t0 = time.perf_counter()
        try:
            response = await self.http.get(self.gateway, headers={"Host": host}, timeout=None)
        except httpx.TransportError as exc:
            raise BenchError(f"held GET failed: {type(exc).__name__}: {exc}") from None
        elapsed = since(t0)
        if response.status_code != 200:
            raise BenchError(
                f"held GET answered {response.status_code} after {elapsed * 1000:.0f} ms:"
                f" {response.text[:300]}"
            )
        return elapsed

    async def _baseline_asleep(self) -> None:
        # Untimed. httpd is PID 1 without a SIGTERM handler here, so bound the grace.
        await self.docker("stop", "-t", "1", self.baseline_id)

    async def wake_cli(self) -> float:
        await self._baseline_asleep()
        t0 = time.perf_counter()
        await self.docker("start", self.baseline_id)
        return await self._first_200(f"http://127.0.0.1:{self.baseline_port}/", t0)

    async def wake_engine(self) -> float:
        await self._baseline_asleep()
        t0 = time.perf_counter()
        await self.engine.start(self.baseline_id)
        return await self._first_200(f"http://127.0.0.1:{self.baseline_port}/", t0)

    # -- create → first served request ---------------------------------------------------

    async def create_berth(self) -> float:
        name = f"bench-new-{uuid.uuid4().hex[:8]}"
        t0 = time.perf_counter()
        workload_id = await self._create_service(name)
        try:
            return await self._first_200(self.gateway, t0, f"{workload_id}.localhost")
        finally:
            await self.delete_workload(workload_id)

    async def create_cli(self) -> float:
        name, port = f"berth-bench-{uuid.uuid4().hex[:12]}", free_port()
        t0 = time.perf_counter()
        try:
            await self.docker(
                "run",
                "-d",
                *run_flags(self.same_as),
                "--name",
                name,
                "--label",
                f"{BENCH_LABEL}=1",
                "-p",
                f"127.0.0.1:{port}:{SERVICE_PORT}",
                self.image,
                "/bin/sh",
                "-c",
                SERVICE_COMMAND,
            )
            return await self._first_200(f"http://127.0.0.1:{port}/", t0)
        finally:
            await self.engine.remove(name)

    async def create_engine(self) -> float:
        port = free_port()
        t0 = time.perf_counter()
        container_id = await self.engine.create(self._baseline_body(port))
        try:
            await self.engine.start(container_id)
            return await self._first_200(f"http://127.0.0.1:{port}/", t0)
        finally:
            await self.engine.remove(container_id)

    def measures(self) -> dict[str, dict[str, Callable[[], Awaitable[float]]]]:
        return {
            "wake": {BERTH: self.wake_berth, CLI: self.wake_cli, ENGINE: self.wake_engine},
            "create": {
                BERTH: self.create_berth,
                CLI: self.create_cli,
                ENGINE: self.create_engine,
            },
        }


async def measure(
    args: argparse.Namespace,
    server: BerthServer,
    key: str,
    engine: Engine,
    meta: dict[str, Any],
) -> dict[str, dict[str, Series]]:
    series = {fig: {v: Series() for v in labels} for fig, (_, labels) in FIGURES.items()}
    bench = WakeBench(
        url=server.url,
        key=key,
        engine=engine,
        image=args.image,
        gateway_port=server.gateway_port,
        poll=args.poll_ms / 1000,
        timeout=args.timeout,
        settle=args.settle_ms / 1000,
    )
    rounds = Rounds(args, meta)
    anchor: str | None = None
    try:
        if not args.no_anchor:
            anchor = await bench.create_anchor()
        await bench.setup()
        measures = bench.measures()
        for round_ in rounds:
            counted = rounds.counted(round_)
            line = []
            for figure, variants in measures.items():
                for variant in rounds.order(list(variants), round_):
                    try:
                        value = await variants[variant]()
                    except (BenchError, httpx.HTTPError, OSError) as exc:
                        print(f"  ! {figure}/{variant}: {exc}", flush=True)
                        if counted:
                            series[figure][variant].errors.append(f"round {round_}: {exc}")
                        continue
                    if counted:
                        series[figure][variant].samples.append(value)
                    if variant in (BERTH, CLI):
                        line.append(f"{figure} {variant} {value * 1000:.0f} ms")
            rounds.done(round_, f" ({', '.join(line)})")
        for workload_id in (bench.service_id, anchor):
            if workload_id:
                await bench.delete_workload(workload_id)
    finally:
        await bench.close()
        await engine.remove_all(f"{BENCH_LABEL}=1")
    return series


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("docker") is None:
        print("the docker CLI is needed (it is the baseline)", file=sys.stderr)
        return 2
    socket_path = args.docker_socket.removeprefix("unix://")
    # As `python -m bench`: nothing gated (an agent's key; approval is a human's wait); SSH
    # and the HTTP gateway on loopback ports of their own (the launcher's default).
    overrides = {"BERTH_DEFAULT_GATED_ACTIONS": "[]"}
    overrides.update(item.split("=", 1) for item in args.env)
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "iterations": args.iterations,
        "warmup": args.warmup,
        "poll_ms": args.poll_ms,
        "timeout_seconds": args.timeout,
        "settle_ms": args.settle_ms,
        "image": args.image,
        "command": SERVICE_COMMAND,
        "anchor_service": not args.no_anchor,
        "target_p50_ratio_vs_docker_cli": TARGET,
        "berth_commit": git_describe(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "server_settings": {"overrides": overrides},
    }
    workdir = Path(tempfile.mkdtemp(prefix="berth-bench-wake-"))
    server = BerthServer(workdir / "data", env=overrides)
    print(
        f"berth wake bench: {args.iterations} rounds (+{args.warmup} warm-up), poll"
        f" {args.poll_ms:g} ms, image {args.image}, berth at {server.url}, gateway"
        f" 127.0.0.1:{server.gateway_port}",
        flush=True,
    )
    series = run_servers(
        [server],
        workdir,
        socket_path=socket_path,
        image=args.image,
        meta=meta,
        measure=lambda engine, keyed: measure(args, server, keyed[0][1], engine, meta),
    )

    figures = {
        key: figure_record(title, {v: (labels[v], s) for v, s in series[key].items()})
        for key, (title, labels) in FIGURES.items()
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"meta": meta, "figures": figures}, indent=2) + "\n")

    print()
    print(engine_line(meta))
    print(render_target_table(figures, berth=BERTH, target=TARGET))
    print(
        "÷docker: p50 over the docker CLI baseline's p50 (the target's ratio); ÷API: over the"
        " raw Engine API's p50. Same run."
    )
    print(f"\nJSON: {args.output}")
    return 1 if any_errors(figures) else 0


if __name__ == "__main__":
    sys.exit(main())
