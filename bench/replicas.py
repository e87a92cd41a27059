"""`python -m bench.replicas`: bench.load's mix on each store and replica count, in one run.

Three set-ups, one after the other, each a fresh berth with the same clients, mix and
measured time as `bench.load` (`berth.testing.load`): **SQLite with one replica** (the
baseline: berth's default), **PostgreSQL with one replica**, and **PostgreSQL with two
replicas** (two `berth serve` processes on one database and one engine, sharing their keys
directory; client n talks to replica n mod 2, as a TCP load balancer would spread them).
PostgreSQL is a throwaway server started for the run (`berth.testing.postgres`; Debian's
`postgresql` package, which `scripts/setup.sh --test` installs). Each set-up's figures are
reported as ratios to the SQLite one's (throughput and p99), with every failure (a 5xx, a
transport error, an unexpected status, an acknowledged write missing afterwards).

Goal (issue: several replicas): PostgreSQL with two replicas has p99 <= 300 ms and at least
SQLite-with-one's throughput. Everything stays on 127.0.0.1; the run stops by itself and
removes berth's containers. Output: a table and `bench/results/replicas.json`; exit status 1
on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.engine import Engine
from bench.harness import git_describe, remove_instance_leftovers
from bench.load import fast_loop_factory, server_log_problems
from berth.config import Settings
from berth.testing.load.run import run_berth_load, tenants_needed
from berth.testing.load.tenants import create_tenants
from berth.testing.postgres import PostgresServer
from berth.testing.server import BerthServer

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "replicas.json"


@dataclass(frozen=True)
class Setup:
    name: str
    postgresql: bool
    replicas: int


SETUPS = (
    Setup("sqlite, 1 replica", postgresql=False, replicas=1),
    Setup("postgresql, 1 replica", postgresql=True, replicas=1),
    Setup("postgresql, 2 replicas", postgresql=True, replicas=2),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replicas",
        description="berth's load mix on SQLite, PostgreSQL and two replicas, in one run.",
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="measured, each (60 s)")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured first (5 s)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (32)")
    parser.add_argument(
        "--job-runs-per-second", type=float, default=0.5, help="job runs, all clients (0.5)"
    )
    parser.add_argument("--image", default="berth-test/busybox:latest")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 256 or not 1 <= args.seconds <= 1800 or args.warmup < 0:
        parser.error("--clients 1-256, --seconds 1-1800, --warmup >= 0")
    return args


async def measure(
    setup: Setup, args: argparse.Namespace, work: Path, postgres: PostgresServer, number: int
) -> dict[str, Any]:
    """One set-up: start its replicas, make the tenants, drive the load, stop."""
    env = {
        "BERTH_DEFAULT_GATED_ACTIONS": "[]",
        "BERTH_RATE_LIMIT_PER_SECOND": "0",
        "BERTH_SHARED_DIR": str(work / "shared"),
    }
    if setup.postgresql:
        env["BERTH_DATABASE_URL"] = postgres.create(f"bench_{number}")
    servers = [BerthServer(work / f"replica-{n}", env=env) for n in range(setup.replicas)]
    engine = Engine("/var/run/docker.sock")
    try:
        settings = Settings(
            data_dir=servers[0].data_dir,
            shared_dir=work / "shared",
            database_url=env.get("BERTH_DATABASE_URL"),
            default_gated_actions=[],
        )
        tenants = await create_tenants(settings, tenants_needed(args.clients), label="replicas")
        for server in servers:
            await asyncio.to_thread(server.start)
        first = servers[0]
        assert first.process is not None
        print(f"{setup.name}: {args.clients} clients, {args.seconds:.0f}s", flush=True)
        run = await run_berth_load(
            base_url=first.url,
            server_pid=first.process.pid,
            tenants=tenants,
            clients=args.clients,
            seconds=args.seconds,
            warmup=args.warmup,
            image=args.image,
            job_runs_per_second=args.job_runs_per_second,
            other_replicas=[server.url for server in servers[1:]],
            other_replica_pids=[server.process.pid for server in servers[1:] if server.process],
            database_pid=postgres.pid() if setup.postgresql else None,
        )
    finally:
        for server in servers:
            await asyncio.to_thread(server.stop)
        if (work / "shared" / "instance.id").exists():
            await remove_instance_leftovers(engine, servers[0].instance_id())
            await engine.remove_volumes(f"dev.berth.instance={servers[0].instance_id()}")
        await engine.close()
    summary = run.summary()
    summary["server_log_problems"] = [
        problem for server in servers for problem in server_log_problems(server.log_tail(10**8))
    ]
    return summary


def failures(summary: dict[str, Any]) -> list[str]:
    found = list(summary["failures"]) + summary["writes_missing"]
    return found + summary["job_runs_not_succeeded"] + summary["server_log_problems"]


async def session(args: argparse.Namespace, work: Path) -> dict[str, dict[str, Any]]:
    postgres = PostgresServer()
    await asyncio.to_thread(postgres.start)
    results: dict[str, dict[str, Any]] = {}
    try:
        for number, setup in enumerate(SETUPS):
            results[setup.name] = await measure(setup, args, work / str(number), postgres, number)
    finally:
        await asyncio.to_thread(postgres.stop)
    return results


def render(results: dict[str, dict[str, Any]]) -> str:
    baseline = results[SETUPS[0].name]
    lines = [
        f"{'set-up':<24} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'req/s ratio':>11} {'p99 ratio':>9} {'CPU ms/req':>16} {'failures':>8}"
    ]
    for name, s in results.items():
        lines.append(
            f"{name:<24} {s['requests_per_second']:>7.0f} {s['p50_ms']:>8.1f}"
            f" {s['p99_ms']:>8.1f} {s['max_ms']:>8.1f}"
            f" {s['requests_per_second'] / baseline['requests_per_second']:>10.2f}x"
            f" {s['p99_ms'] / baseline['p99_ms']:>8.2f}x {cpu_per_request(s):>16}"
            f" {len(failures(s)):>8}"
        )
    lines.append("ratios are to SQLite with one replica, measured in the same run")
    lines.append(
        "CPU ms/req: berth's replicas + the database server, CPU time per request answered"
    )
    return "\n".join(lines)


def cpu_per_request(summary: dict[str, Any]) -> str:
    """Where a request's CPU went: berth's replicas, then PostgreSQL's server (if any)."""
    rate = summary["requests_per_second"]
    berth = 10 * summary["replicas_cpu_percent"] / rate
    database = 10 * summary["database_cpu_percent"] / rate
    return f"{berth:.2f} + {database:.2f}" if database else f"{berth:.2f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "berth_commit": git_describe(),
        "cpus": os.cpu_count(),
    }
    work = Path(tempfile.mkdtemp(prefix="berth-bench-replicas-"))
    began = time.monotonic()
    try:
        with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
            results = runner.run(session(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    meta["duration_seconds"] = round(time.monotonic() - began, 1)
    print(render(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    problems = [f"{name}: {p}" for name, s in results.items() for p in failures(s)]
    for problem in problems[:20]:
        print(f"FAILURE {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
