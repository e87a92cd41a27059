"""`python -m bench.pool`: a sandbox's create → first exec answered, from a warm pool, next to
berth without a pool and to the container engine, in one run.

One figure, four variants, interleaved round by round (the order rotated), each timed from
right before its first request to the exec's answer (exit code 0 checked):

- **berth, warm pool**: `POST /v1/compute` of a sandbox service (`--image`, port 8080, no
  command: the image's own server) on a berth whose `BERTH_WARM_POOLS` holds `--pool-size`
  ready tasks of exactly that shape, then at once `POST /v1/compute/{id}/exec` of `true`,
  which waits for the task. Before each sample (untimed) the bench waits until `GET
  /v1/system` shows the pool full again, so every sample takes a ready task; afterwards it
  checks the service's container is a pool's.
- **berth, no pool**: the same two requests on a second berth without pools (berth's cold
  path: the create launches a new task).
- **docker CLI** (the baseline): `docker run -d` of the same image with the same settings
  as berth's task (`wake.SAME_AS_TASK`: its network, init, limits, confinement, log cap),
  port 8080 published on loopback, then `docker exec <c> true`.
- **engine API** (a stricter reference): the same create, start, exec and the exec's exit
  code through the Engine API, without the CLI's processes.

Every sample's workload or container is deleted afterwards (untimed) and the bench waits
until berth is quiet again. Ratios are of medians; the goal is berth's pooled p50 at most
`TARGET` times the docker CLI's. Output: a table on stdout and `bench/results/pool.json`.
See bench/README.md.
"""

from __future__ import annotations

import argparse
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
from bench.stats import CLI, ENGINE, Series, figure_record, percentile, render_target_table
from bench.wake import SAME_AS_TASK
from berth.domain import labels
from berth.schemas.workloads import WorkloadCreate
from berth.testing.server import BerthServer

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "pool.json"
SANDBOX_IMAGE = "berth-test/sandbox:latest"
"""Its own command serves /var/www on 8080 (scripts/setup.sh)."""
SANDBOX_PORT = 8080
POOL_NAME = "bench-sandboxes"
EXEC_COMMAND = ["true"]
TARGET = 0.3
"""berth's pooled p50 over the docker CLI baseline's p50, at most."""
PUBLISHED_SECONDS = {"E2B": 0.44, "Daytona": 0.11}
"""Sandbox create → ready figures the vendors publish, measured on their own machines."""

POOLED = "berth, warm pool"
COLD = "berth, no pool"
LABELS = {
    POOLED: "berth, warm pool: POST /v1/compute + exec",
    COLD: "berth, no pool: the same create + exec",
    CLI: "docker run -d + docker exec true",
    ENGINE: "engine API create+start+exec (ref.)",
}
FIGURES = {"exec": ("sandbox create → first exec answered", LABELS)}
STEPS = {"create": "POST /v1/compute answered", "exec": "exec answered (exit code 0)"}
"""berth's steps, ms from the POST (medians below the table)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pool",
        description="A sandbox's create → first exec from a warm pool, next to docker.",
    )
    add_run_arguments(parser, iterations=10, poll_ms=20.0, output=DEFAULT_OUTPUT)
    parser.set_defaults(image=SANDBOX_IMAGE)
    parser.add_argument(
        "--pool-size",
        type=int,
        default=3,
        help="ready tasks the pool keeps (3); each sample waits until it is full again",
    )
    parser.add_argument(
        "--no-anchor",
        action="store_true",
        help="no long-running service of the same user beside the samples (berth then"
        " removes the user's network after each sample and makes it again for the next;"
        " the baselines run on a network of the bench's own)",
    )
    args = parser.parse_args(argv)
    check_run_arguments(parser, args)
    if not 1 <= args.pool_size <= 100:
        parser.error("--pool-size must be between 1 and 100")
    return args


def pool_setting(image: str, size: int) -> list[dict[str, Any]]:
    """`BERTH_WARM_POOLS` for exactly the sandbox create the bench sends (a create leaving
    cpu and memory out gets WorkloadCreate's defaults: the pool names them too)."""
    defaults = WorkloadCreate.model_fields
    return [
        {
            "kind": "service",
            "name": POOL_NAME,
            "image": image,
            "port": SANDBOX_PORT,
            "cpu": defaults["cpu"].default,
            "memory_mb": defaults["memory_mb"].default,
            "size": size,
            "max_size": size,
        }
    ]


@dataclass(kw_only=True, eq=False)
class SandboxBench(BerthBench):
    """One berth server's sandbox creates (`pool_size` 0: a server without pools)."""

    pool_size: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.steps = {step: Series() for step in STEPS.values()}

    async def pool_full(self) -> None:
        """Wait until `GET /v1/system` shows the pool holding `pool_size` ready tasks."""
        if not self.pool_size:
            return

        async def probe() -> bool | None:
            response = await self.api.get("/v1/system")
            if response.status_code != 200:
                raise BenchError(f"GET /v1/system answered {response.status_code}")
            pools = response.json()["warm_pools"]
            ready = sum(p["ready"] for p in pools if p["name"] == POOL_NAME)
            return True if ready >= self.pool_size else None

        await self.until(probe, f"pool {POOL_NAME} to hold {self.pool_size} ready tasks")

    async def _create(self) -> str:
        body = {
            "name": f"bench-sandbox-{uuid.uuid4().hex[:8]}",
            "type": "service",
            "image": self.image,
            "port": SANDBOX_PORT,
        }
        response = await self.api.post("/v1/compute", json=body)
        if response.status_code != 201:
            raise BenchError(f"create answered {response.status_code}: {response.text[:300]}")
        return str(response.json()["id"])

    async def _exec(self, workload_id: str) -> None:
        response = await self.api.post(
            f"/v1/compute/{workload_id}/exec", json={"command": EXEC_COMMAND}
        )
        if response.status_code != 200 or response.json().get("exit_code") != 0:
            raise BenchError(f"exec answered {response.status_code}: {response.text[:300]}")

    async def create_then_exec(self, counted: bool) -> float:
        """One sample: create, exec at once, until the exec's answer. Then (untimed) check
        the task came from the pool (or not, without one), delete, wait until quiet."""
        await self.pool_full()
        t0 = time.perf_counter()
        workload_id = ""
        try:
            workload_id = await self._create()
            created = since(t0)
            await self._exec(workload_id)
            elapsed = since(t0)
            await self._check_origin(workload_id)
        finally:
            if workload_id:
                await self.delete_workload(workload_id)
        if counted:
            self.steps[STEPS["create"]].samples.append(created)
            self.steps[STEPS["exec"]].samples.append(elapsed)
        return elapsed

    async def _check_origin(self, workload_id: str) -> None:
        tasks = await self.engine.containers(f"{labels.WORKLOAD}={workload_id}")
        pooled = [t for t in tasks if (t.get("Labels") or {}).get(labels.POOLED) == "1"]
        if self.pool_size and not pooled:
            raise BenchError(f"{workload_id} started a task of its own: the pool had none ready")
        if not self.pool_size and pooled:
            raise BenchError(f"{workload_id} took a pool task on the server without pools")

    async def task_settings(self) -> Json:
        """The HostConfig fields of `SAME_AS_TASK` of this server's sandbox task (a create
        made for it and deleted after), for the baselines to run the same container."""
        workload_id = await self._create()
        try:
            await self._exec(workload_id)
            (task,) = await self.engine.containers(f"{labels.WORKLOAD}={workload_id}")
            host_config = (await self.engine.inspect(task["Id"]))["HostConfig"]
        finally:
            await self.delete_workload(workload_id)
        return {k: host_config[k] for k in SAME_AS_TASK if host_config.get(k)}


@dataclass(kw_only=True, eq=False)
class Baselines(BerthBench):
    """The same container as berth's task (`same_as`), through the docker CLI and the
    Engine API; removed after each sample."""

    same_as: Json

    async def run_cli(self) -> float:
        name = f"berth-bench-{uuid.uuid4().hex[:12]}"
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
                f"127.0.0.1::{SANDBOX_PORT}",
                self.image,
            )
            # `docker exec` exits with the command's code: a failure is a BenchError.
            await self.docker("exec", name, *EXEC_COMMAND)
            return since(t0)
        finally:
            await self.engine.remove(name)

    async def run_engine(self) -> float:
        body = container_body(self.image, None, {SANDBOX_PORT: ""}, self.same_as)
        t0 = time.perf_counter()
        container_id = await self.engine.create(body)
        try:
            await self.engine.start(container_id)
            code = await self.engine.exec(container_id, EXEC_COMMAND)
            elapsed = since(t0)
        finally:
            await self.engine.remove(container_id)
        if code != 0:
            raise BenchError(f"exec exited {code}")
        return elapsed


async def measure(
    args: argparse.Namespace,
    keyed: list[tuple[BerthServer, str]],
    engine: Engine,
    meta: dict[str, Any],
) -> tuple[dict[str, Series], dict[str, dict[str, Series]]]:
    """`keyed`: (server, key) of the pooled berth, then of the one without pools."""
    series = {variant: Series() for variant in LABELS}
    common = {
        "engine": engine,
        "image": args.image,
        "poll": args.poll_ms / 1000,
        "timeout": args.timeout,
    }
    (pooled_server, pooled_key), (cold_server, cold_key) = keyed
    pooled = SandboxBench(url=pooled_server.url, key=pooled_key, pool_size=args.pool_size, **common)
    cold = SandboxBench(url=cold_server.url, key=cold_key, **common)
    benches = (pooled, cold)
    anchors: list[tuple[SandboxBench, str]] = []
    baselines: Baselines | None = None
    rounds = Rounds(args, meta)
    try:
        if not args.no_anchor:
            anchors = [(bench, await bench.create_anchor()) for bench in benches]
        await pooled.pool_full()
        same_as = await cold.task_settings()
        if args.no_anchor:
            # The user's network went with the sandbox made for the settings: the baselines
            # run on a user-defined bridge of the bench's own instead.
            same_as["NetworkMode"] = f"berth-bench-{os.getpid()}"
            await engine.create_network(same_as["NetworkMode"], {BENCH_LABEL: "1"})
        meta["baseline_host_config"] = same_as
        base = baselines = Baselines(url=cold_server.url, key=cold_key, same_as=same_as, **common)
        measures: dict[str, Callable[[bool], Awaitable[float]]] = {
            POOLED: pooled.create_then_exec,
            COLD: cold.create_then_exec,
            CLI: lambda _: base.run_cli(),
            ENGINE: lambda _: base.run_engine(),
        }
        for round_ in rounds:
            counted = rounds.counted(round_)
            line = []
            for variant in rounds.order(list(measures), round_):
                await pooled.pool_full()  # no refill overlaps a timed sample
                try:
                    value = await measures[variant](counted)
                except (BenchError, httpx.HTTPError, OSError) as exc:
                    print(f"  ! {variant}: {exc}", flush=True)
                    if counted:
                        series[variant].errors.append(f"round {round_}: {exc}")
                    continue
                if counted:
                    series[variant].samples.append(value)
                line.append(f"{variant} {value * 1000:.0f} ms")
            rounds.done(round_, f" ({', '.join(line)})")
        for bench, anchor in anchors:
            await bench.delete_workload(anchor)
    finally:
        for each in (pooled, cold, baselines):
            if each is not None:
                await each.close()
        await engine.remove_all(f"{BENCH_LABEL}=1")
        await engine.remove_networks(f"{BENCH_LABEL}=1")
    return series, {POOLED: pooled.steps, COLD: cold.steps}


def summary_lines(figure: dict[str, Any], steps: dict[str, dict[str, Series]]) -> list[str]:
    """The goal line, the context ratios, the published figures and berth's steps."""
    variants = figure["variants"]
    p50 = {name: variants[name]["p50_ms"] for name in variants}
    ratio = variants[POOLED]["p50_ratio_vs_docker_cli"]
    lines = []
    if ratio is None:
        lines.append("goal: no figure (a variant has no sample)")
    else:
        verdict = "met" if ratio <= TARGET else "NOT met"
        lines.append(
            f"goal: berth, warm pool ÷ docker CLI = {p50[POOLED]:.0f} ms ÷ {p50[CLI]:.0f} ms"
            f" = {ratio:.2f} (at most {TARGET:g}): {verdict}"
        )
    cold = variants[COLD]["p50_ratio_vs_docker_cli"]
    if cold is not None:
        lines.append(f"context: berth, no pool ÷ docker CLI = {cold:.2f}")
    if p50[POOLED] is not None:
        published = ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in PUBLISHED_SECONDS.items())
        lines.append(
            f"berth, warm pool, p50 {p50[POOLED]:.0f} ms here; published elsewhere: {published}"
            " (the vendors' figures, their machines)"
        )
    lines.append("berth's steps (medians, ms from the POST):")
    for variant, by_step in steps.items():
        for step, series in by_step.items():
            value = percentile([s * 1000 for s in series.samples], 50)
            lines.append(f"  {variant:<18} {step:<32} {value:>6.0f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("docker") is None:
        print("the docker CLI is needed (it is the baseline)", file=sys.stderr)
        return 2
    socket_path = args.docker_socket.removeprefix("unix://")
    # As the other benches: nothing gated (an agent's key; approval is a human's wait), and
    # no per-key rate limit (the untimed waits poll every --poll-ms with one key).
    overrides = {"BERTH_DEFAULT_GATED_ACTIONS": "[]", "BERTH_RATE_LIMIT_PER_SECOND": "0"}
    overrides.update(item.split("=", 1) for item in args.env)
    pools = pool_setting(args.image, args.pool_size)
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "iterations": args.iterations,
        "warmup": args.warmup,
        "poll_ms": args.poll_ms,
        "timeout_seconds": args.timeout,
        "image": args.image,
        "exec_command": EXEC_COMMAND,
        "anchor_service": not args.no_anchor,
        "target_p50_ratio_vs_docker_cli": TARGET,
        "published_seconds": PUBLISHED_SECONDS,
        "berth_commit": git_describe(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "server_settings": {"overrides": overrides, "pooled_server": {"BERTH_WARM_POOLS": pools}},
    }
    workdir = Path(tempfile.mkdtemp(prefix="berth-bench-pool-"))
    pooled = BerthServer(
        workdir / "pooled", env={**overrides, "BERTH_WARM_POOLS": json.dumps(pools)}
    )
    cold = BerthServer(workdir / "cold", env=overrides)
    print(
        f"berth pool bench: {args.iterations} rounds (+{args.warmup} warm-up), image"
        f" {args.image}, pool of {args.pool_size}, berth at {pooled.url} (pooled) and"
        f" {cold.url} (no pool)",
        flush=True,
    )
    series, steps = run_servers(
        [pooled, cold],
        workdir,
        socket_path=socket_path,
        image=args.image,
        meta=meta,
        measure=lambda engine, keyed: measure(args, keyed, engine, meta),
    )
    figures = {
        key: figure_record(title, {v: (labels_[v], series[v]) for v in labels_})
        for key, (title, labels_) in FIGURES.items()
    }
    record = {
        "meta": meta,
        "figures": figures,
        "berth_steps_ms": {
            variant: {step: s.summary() for step, s in by_step.items()}
            for variant, by_step in steps.items()
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print()
    print(engine_line(meta))
    print(render_target_table(figures, berth=POOLED, target=TARGET))
    print(
        "÷docker: p50 over the docker CLI baseline's p50 (the goal's ratio); ÷API: over the"
        " raw Engine API's p50. Same run."
    )
    print()
    print("\n".join(summary_lines(figures["exec"], steps)))
    print(f"\nJSON: {args.output}")
    return 1 if any_errors(figures) else 0


if __name__ == "__main__":
    sys.exit(main())
