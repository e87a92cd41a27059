"""`python -m bench.pause`: resume → first exec answered, and a paused service woken by a
request through the gateway, each next to the container engine in the same run.

- **resume → first exec**: a service, paused (untimed `POST .../pause`), then timed: `POST
  .../resume` and `POST .../exec` of `true` until its answer. Beside it, the same through an
  exec alone (which resumes a paused service first). Baseline: a container of the same image,
  command and settings as berth's task (`wake.SAME_AS_TASK`), `docker pause` (untimed), then
  timed `docker unpause` + `docker exec <c> true`.
- **paused service → first 200**: the same service paused, then one `GET /` through berth's
  HTTP gateway (`Host: <id>.localhost`), held while the service resumes, until its `200`.
  Baseline: `docker unpause` of the paused baseline container, then `GET` on its published
  port every poll until `200`; the raw Engine API's unpause beside it as a reference.

Output: a table on stdout and `bench/results/pause.json`. See bench/README.md.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.engine import BENCH_LABEL, Engine
from bench.harness import (
    BenchError,
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
from bench.wake import SERVICE_COMMAND, WakeBench
from berth.testing.server import BerthServer

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "pause.json"
TARGET = 1.3
"""berth's p50 over the docker CLI baseline's p50, at most (issue 16, "Performance")."""

BERTH = "berth"
BERTH_EXEC = "berth exec"
RESUME_LABELS = {
    BERTH: "berth: POST /resume + POST /exec → answer",
    BERTH_EXEC: "berth: POST /exec (wakes it) → answer",
    CLI: "docker unpause + docker exec true",
}
WAKE_LABELS = {
    BERTH: "berth: held GET through the gateway → 200",
    CLI: "docker unpause → GET 200",
    ENGINE: "engine API unpause → GET 200 (reference)",
}
FIGURES = {
    "resume": ("resume → first exec answered", RESUME_LABELS),
    "wake": ("paused service → first 200 through the gateway", WAKE_LABELS),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pause",
        description="berth's resume of a paused service next to docker unpause.",
    )
    add_run_arguments(parser, iterations=10, poll_ms=10.0, output=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    check_run_arguments(parser, args)
    args.settle_ms = 0.0
    return args


@dataclass(kw_only=True, eq=False)
class PauseBench(WakeBench):
    """`WakeBench`'s service and baseline container, paused and resumed instead of stopped
    and started (the baseline is started once, in `setup`)."""

    async def setup(self) -> None:
        await super().setup()
        await self.engine.start(self.baseline_id)
        await self._first_200(f"http://127.0.0.1:{self.baseline_port}/", time.perf_counter())

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        response = await self.api.post(path, json=body, timeout=self.timeout)
        if response.status_code != 200:
            raise BenchError(f"{path} answered {response.status_code}: {response.text[:300]}")
        return response

    async def _pause_berth(self) -> None:
        answer = await self._post(f"/v1/compute/{self.service_id}/pause")
        if answer.json()["status"] != "paused":
            raise BenchError(f"pause left the service {answer.json()['status']}")

    async def _exec_true(self) -> None:
        answer = await self._post(f"/v1/compute/{self.service_id}/exec", {"command": ["true"]})
        if answer.json().get("exit_code") != 0:
            raise BenchError(f"exec answered {answer.text[:300]}")

    async def resume_berth(self) -> float:
        await self._pause_berth()
        t0 = time.perf_counter()
        await self._post(f"/v1/compute/{self.service_id}/resume")
        await self._exec_true()
        return since(t0)

    async def resume_by_exec(self) -> float:
        await self._pause_berth()
        t0 = time.perf_counter()
        await self._exec_true()
        return since(t0)

    async def resume_cli(self) -> float:
        await self.docker("pause", self.baseline_id)
        t0 = time.perf_counter()
        await self.docker("unpause", self.baseline_id)
        await self.docker("exec", self.baseline_id, "true")
        return since(t0)

    async def wake_paused_berth(self) -> float:
        await self._pause_berth()
        t0 = time.perf_counter()
        response = await self.http.get(
            self.gateway, headers={"Host": f"{self.service_id}.localhost"}, timeout=None
        )
        elapsed = since(t0)
        if response.status_code != 200:
            raise BenchError(f"held GET answered {response.status_code}: {response.text[:300]}")
        return elapsed

    async def wake_paused_cli(self) -> float:
        await self.docker("pause", self.baseline_id)
        t0 = time.perf_counter()
        await self.docker("unpause", self.baseline_id)
        return await self._first_200(f"http://127.0.0.1:{self.baseline_port}/", t0)

    async def wake_paused_engine(self) -> float:
        await self.docker("pause", self.baseline_id)
        t0 = time.perf_counter()
        response = await self.engine.client.post(f"/containers/{self.baseline_id}/unpause")
        if response.status_code != 204:
            raise BenchError(f"unpause answered {response.status_code}: {response.text}")
        return await self._first_200(f"http://127.0.0.1:{self.baseline_port}/", t0)

    def pause_measures(self) -> dict[str, dict[str, Callable[[], Awaitable[float]]]]:
        return {
            "resume": {
                BERTH: self.resume_berth,
                BERTH_EXEC: self.resume_by_exec,
                CLI: self.resume_cli,
            },
            "wake": {
                BERTH: self.wake_paused_berth,
                CLI: self.wake_paused_cli,
                ENGINE: self.wake_paused_engine,
            },
        }


async def measure(
    args: argparse.Namespace, server: BerthServer, key: str, engine: Engine, meta: dict[str, Any]
) -> dict[str, dict[str, Series]]:
    series = {fig: {v: Series() for v in labels} for fig, (_, labels) in FIGURES.items()}
    bench = PauseBench(
        url=server.url,
        key=key,
        engine=engine,
        image=args.image,
        gateway_port=server.gateway_port,
        poll=args.poll_ms / 1000,
        timeout=args.timeout,
    )
    rounds = Rounds(args, meta)
    try:
        await bench.setup()
        measures = bench.pause_measures()
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
        await bench.delete_workload(bench.service_id)
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
    overrides = {"BERTH_DEFAULT_GATED_ACTIONS": "[]"}
    overrides.update(item.split("=", 1) for item in args.env)
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "iterations": args.iterations,
        "warmup": args.warmup,
        "poll_ms": args.poll_ms,
        "timeout_seconds": args.timeout,
        "image": args.image,
        "command": SERVICE_COMMAND,
        "target_p50_ratio_vs_docker_cli": TARGET,
        "berth_commit": git_describe(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "server_settings": {"overrides": overrides},
    }
    workdir = Path(tempfile.mkdtemp(prefix="berth-bench-pause-"))
    server = BerthServer(workdir / "data", env=overrides)
    print(
        f"berth pause bench: {args.iterations} rounds (+{args.warmup} warm-up), image"
        f" {args.image}, berth at {server.url}, gateway 127.0.0.1:{server.gateway_port}",
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
    print("÷docker: p50 over the docker CLI baseline's p50 (the target's ratio). Same run.")
    print(f"\nJSON: {args.output}")
    return 1 if any_errors(figures) else 0


if __name__ == "__main__":
    sys.exit(main())
