"""What the start-up benches (`python -m bench`, `python -m bench.wake`) share.

- the run: the flags both take, the berth server(s) started with a key each beside an engine
  client, and everything stopped and removed afterwards, whatever happened (`run_servers`);
- `Rounds`: the warm-up and counted rounds, in a rotating order, within `--max-seconds`;
- `BerthBench`, the base of each bench's measurements: its berth API client and the plain
  HTTP client its samples probe published ports with, the bench's polling cadence, the
  docker CLI, the anchor service, and deleting a workload until berth is quiet again.

The other benches (`bench.api`, `bench.load`) use the run's small helpers too
(`git_describe`, `remove_instance_leftovers`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx

from bench.engine import BENCH_LABEL, Engine, Json
from berth.domain import labels
from berth.testing.server import BerthServer
from berth.testing.waiting import poll_until

ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


class BenchError(RuntimeError):
    """A sample failed (or did not finish in time): recorded as the variant's error."""


def since(t0: float) -> float:
    """Seconds from `t0` (a `time.perf_counter()` reading) to now."""
    return time.perf_counter() - t0


# -- the run ----------------------------------------------------------------------------------


def add_run_arguments(
    parser: argparse.ArgumentParser, *, iterations: int, poll_ms: float, output: Path
) -> None:
    """The flags both start-up benches take, with this bench's defaults."""
    parser.add_argument(
        "--iterations", type=int, default=iterations, help=f"samples per variant ({iterations})"
    )
    parser.add_argument("--warmup", type=int, default=1, help="discarded rounds first (1)")
    parser.add_argument(
        "--poll-ms", type=float, default=poll_ms, help=f"poll interval ({poll_ms:g} ms)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="give up one wait after this (60 s)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=900.0,
        help="stop starting new rounds after this long overall (900 s)",
    )
    parser.add_argument("--image", default="berth-test/busybox:latest")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="BERTH_X=VALUE",
        help="a setting for the berth server (default: none, i.e. berth's defaults)",
    )
    parser.add_argument("--output", type=Path, default=output)
    parser.add_argument(
        "--docker-socket", default=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    )


def check_run_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse (usage error, exit 2) what `add_run_arguments`' flags cannot take."""
    if args.iterations < 1 or args.warmup < 0:
        parser.error("--iterations must be >= 1 and --warmup >= 0")
    for item in args.env:
        if "=" not in item or not item.startswith("BERTH_"):
            parser.error(f"--env takes BERTH_NAME=VALUE, got {item!r}")


def git_describe() -> str:
    """The checkout's commit, `+dirty-src` if berth's source differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return head + ("+dirty-src" if dirty else "")


async def remove_instance_leftovers(engine: Engine, instance_id: str) -> int:
    """Remove the containers and networks a berth instance left; how many containers."""
    label = f"{labels.INSTANCE}={instance_id}"
    removed = await engine.remove_all(label)
    await engine.remove_networks(label)
    return removed


async def engine_info(engine: Engine, image: str) -> dict[str, Any]:
    """The engine's version for the record; exits if `image` is not there to measure with."""
    version = await engine.version()
    if not await engine.image_present(image):
        raise SystemExit(f"image {image!r} is not present locally (build it or pass --image)")
    return {"version": version.get("Version"), "api_version": version.get("ApiVersion")}


def run_servers(
    servers: list[BerthServer],
    workdir: Path,
    *,
    socket_path: str,
    image: str,
    meta: dict[str, Any],
    measure: Callable[[Engine, list[tuple[BerthServer, str]]], Awaitable[T]],
) -> T:
    """Start `servers` (each with a new API key), `measure(engine, [(server, key), ...])`,
    then stop them and remove what they and the baselines left, and `workdir`.

    Records the engine (`meta["engine"]`) and the run's duration (`meta["duration_seconds"]`);
    if anything fails, prints the first server's log tail before the error goes on.
    """
    began = time.monotonic()

    async def session() -> T:
        engine = Engine(socket_path)
        try:
            meta["engine"] = await engine_info(engine, image)
            keyed = []
            for server in servers:
                await asyncio.to_thread(server.start)
                keyed.append((server, await asyncio.to_thread(server.new_key)))
            return await measure(engine, keyed)
        finally:
            for server in servers:
                await asyncio.to_thread(server.stop)
                if (server.data_dir / "instance.id").exists():
                    await remove_instance_leftovers(engine, server.instance_id())
            await engine.remove_all(f"{BENCH_LABEL}=1")
            await engine.close()

    try:
        result = asyncio.run(session())
    except Exception:
        print(f"berth server log tail:\n{servers[0].log_tail()}", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    meta["duration_seconds"] = round(time.monotonic() - began, 1)
    return result


class Rounds:
    """A run's rounds: `--warmup` discarded ones, then `--iterations` counted ones; none
    starts after `--max-seconds` from when this was made (then `meta["stopped_early"]`)."""

    def __init__(self, args: argparse.Namespace, meta: dict[str, Any]) -> None:
        self.warmup: int = args.warmup
        self.iterations: int = args.iterations
        self.max_seconds: float = args.max_seconds
        self.meta = meta
        self.started = time.monotonic()

    def __iter__(self) -> Iterator[int]:
        for round_ in range(self.warmup + self.iterations):
            if time.monotonic() - self.started > self.max_seconds:
                self.meta["stopped_early"] = f"--max-seconds {self.max_seconds:.0f} reached"
                print(f"stopping early: {self.meta['stopped_early']}", flush=True)
                return
            yield round_

    def counted(self, round_: int) -> bool:
        return round_ >= self.warmup

    @staticmethod
    def order(variants: list[T], round_: int) -> list[T]:
        """`variants` rotated by the round, so no variant always runs right after another."""
        shift = round_ % len(variants)
        return variants[shift:] + variants[:shift]

    def done(self, round_: int, summary: str) -> None:
        """Print that `round_` is done, when, and `summary` (its figures, or nothing)."""
        label = f"round {round_ + 1 - self.warmup}/{self.iterations}"
        if not self.counted(round_):
            label = "warm-up"
        print(f"{label} done at {time.monotonic() - self.started:.0f}s{summary}", flush=True)


def engine_line(meta: dict[str, Any]) -> str:
    """The line above the table: engine, CPUs, berth's commit, the run's duration."""
    engine = meta.get("engine", {})
    return (
        f"engine {engine.get('version')} (API {engine.get('api_version')}), "
        f"{meta['cpus']} CPUs, berth {meta['berth_commit']}, {meta['duration_seconds']:.0f}s"
    )


def any_errors(figures: dict[str, dict[str, Any]]) -> bool:
    """Whether a sample of any variant of any figure failed (the exit status is then 1)."""
    return any(s["errors"] for f in figures.values() for s in f["variants"].values())


# -- the measurements' base -------------------------------------------------------------------


@dataclass(kw_only=True, eq=False)
class BerthBench:
    """A bench's berth client, its HTTP client for published ports, and the waits it shares.

    Every wait polls at the bench's cadence (`until`) and gives up after `timeout` seconds
    with a `BenchError`, which the caller records as the sample's error.
    """

    url: str
    key: str
    engine: Engine
    image: str
    poll: float
    """Seconds between the starts of two probes of a wait."""
    timeout: float
    """Seconds one wait may take."""
    request_timeout: ClassVar[float] = 5.0
    """Seconds one request to a published port (or the gateway) may take."""

    def __post_init__(self) -> None:
        self.api = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
            trust_env=False,
        )
        # A new connection for every request (no keep-alive), for berth and the baselines
        # alike: a first request of a client, never a pooled connection to a stopped task.
        self.http = httpx.AsyncClient(
            limits=httpx.Limits(max_keepalive_connections=0),
            trust_env=False,
            timeout=self.request_timeout,
        )

    async def close(self) -> None:
        await self.http.aclose()
        await self.api.aclose()

    async def until(self, probe: Callable[[], Awaitable[T | None]], what: str) -> T:
        """Call `probe` every `poll` seconds until it answers (anything truthy; None while
        not yet), which is returned; `BenchError` after `timeout` seconds.

        The cadence is start to start, a probe every `poll` however long the last one took,
        so a condition is observed at most one interval late: the figures' observation delay.
        `poll_until` (the project's poller) sleeps its interval after each check instead, so
        it runs with none and the probe keeps the cadence itself.
        """

        async def paced() -> T | None:
            started = time.perf_counter()
            result = await probe()
            if result is None:
                await asyncio.sleep(max(0.0, self.poll - since(started)))
            return result

        result = await poll_until(paced, self.timeout, interval=0)
        if not result:
            raise BenchError(f"timed out after {self.timeout:.0f}s waiting for {what}")
        return result

    async def docker(self, *args: str) -> str:
        """Run the docker CLI; its stdout, `BenchError` if it fails or outlasts `timeout`."""
        proc = await asyncio.create_subprocess_exec(
            "docker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise BenchError(f"docker {args[0]} did not return in {self.timeout:.0f}s") from None
        if proc.returncode != 0:
            raise BenchError(f"docker {args[0]} failed ({proc.returncode}): {err.decode()[-500:]}")
        return out.decode().strip()

    async def watch(
        self, workload_id: str, t0: float, done: Callable[[Json], bool], what: str
    ) -> tuple[float, Json]:
        """GET the workload every poll until `done(body)`: (seconds from `t0` to that
        answer, body). A failed or crash-looping service fails the wait at once."""

        async def probe() -> tuple[float, Json] | None:
            response = await self.api.get(f"/v1/compute/{workload_id}")
            now = since(t0)
            if response.status_code != 200:
                raise BenchError(f"GET workload answered {response.status_code}: {response.text}")
            body: Json = response.json()
            if body["status"] in ("failed", "crash_loop"):
                raise BenchError(f"service {body['status']}: {body['status_reason']}")
            return (now, body) if done(body) else None

        return await self.until(probe, what)

    async def gone(self, label: str) -> None:
        """Wait until no container carries `label` (`key=value`)."""

        async def probe() -> bool | None:
            return True if not await self.engine.containers(label) else None

        await self.until(probe, f"containers labelled {label} to be removed")

    async def create_anchor(self) -> str:
        """A long-running service of the same user, kept for the whole run: the user's
        network then always has an endpoint, so berth never removes and re-creates it
        between samples (the steady state of a user who already runs something)."""
        body = {
            "name": f"bench-anchor-{uuid.uuid4().hex[:8]}",
            "type": "service",
            "image": self.image,
            "command": "exec sleep 86400",
        }
        response = await self.api.post("/v1/compute", json=body)
        if response.status_code != 201:
            raise BenchError(f"anchor create answered {response.status_code}: {response.text}")
        workload_id = str(response.json()["id"])
        await self.watch(
            workload_id,
            time.perf_counter(),
            lambda b: b["status"] == "running",
            f"anchor {workload_id} to run",
        )
        return workload_id

    async def delete_workload(self, workload_id: str) -> None:
        """Delete and wait until berth is quiet again: containers removed, workload purged."""
        response = await self.api.delete(f"/v1/compute/{workload_id}")
        if response.status_code not in (200, 404):
            raise BenchError(f"delete answered {response.status_code}: {response.text}")
        await self.gone(f"{labels.WORKLOAD}={workload_id}")

        async def purged() -> bool | None:
            response = await self.api.get(f"/v1/compute/{workload_id}")
            return True if response.status_code == 404 else None

        await self.until(purged, f"workload {workload_id} to be purged")
