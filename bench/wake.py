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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.__main__ import engine_info, git_describe, remove_instance_leftovers
from bench.engine import BENCH_LABEL, Engine, Json
from bench.stats import CLI, ENGINE, Series, figure_record
from berth.testing.server import BerthServer, free_port

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "wake.json"
SERVICE_PORT = 8080
SERVICE_COMMAND = "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www"
WORKLOAD_LABEL = "dev.berth.workload"
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


class BenchError(RuntimeError):
    pass


def _since(t0: float) -> float:
    return time.perf_counter() - t0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.wake",
        description="berth's wake from zero and create → first request next to docker.",
    )
    parser.add_argument("--iterations", type=int, default=8, help="samples per variant (8)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded rounds first (1)")
    parser.add_argument("--poll-ms", type=float, default=10.0, help="poll interval (10 ms)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="give up one wait after this (60 s)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=900.0,
        help="stop starting new rounds after this long overall (900 s)",
    )
    parser.add_argument(
        "--settle-ms",
        type=float,
        default=0.0,
        help="untimed pause between berth reporting the service stopped and the timed GET"
        " (0: the GET follows at once)",
    )
    parser.add_argument("--image", default="berth-test/busybox:latest")
    parser.add_argument(
        "--no-anchor",
        action="store_true",
        help="no long-running service of the same user beside the samples (berth then"
        " removes and re-creates the user's network around each stop/start and create)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="BERTH_X=VALUE",
        help="a setting for the berth server (default: none, i.e. berth's defaults)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--docker-socket", default=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    )
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0:
        parser.error("--iterations must be >= 1 and --warmup >= 0")
    for item in args.env:
        if "=" not in item or not item.startswith("BERTH_"):
            parser.error(f"--env takes BERTH_NAME=VALUE, got {item!r}")
    return args


class WakeBench:
    def __init__(
        self,
        *,
        api: httpx.AsyncClient,
        engine: Engine,
        image: str,
        gateway_port: int,
        poll: float,
        timeout: float,
        settle: float = 0.0,
    ) -> None:
        self.api = api
        self.settle = settle
        self.engine = engine
        self.image = image
        self.gateway = f"http://127.0.0.1:{gateway_port}/"
        self.poll = poll
        self.timeout = timeout
        # A new connection for every request (no keep-alive), for berth and the baselines
        # alike: a first request of a client, never a pooled connection to a stopped task.
        self.http = httpx.AsyncClient(
            limits=httpx.Limits(max_keepalive_connections=0), trust_env=False, timeout=5.0
        )
        self.service_id = ""
        self.same_as: Json = {}
        self.baseline_id = ""
        self.baseline_port = 0

    async def close(self) -> None:
        await self.http.aclose()

    # -- helpers -------------------------------------------------------------------------

    async def _until(self, probe: Callable[[], Awaitable[Any]], what: str) -> Any:
        """Call `probe` every `poll` until it returns something not None (deadline bound)."""
        deadline = time.perf_counter() + self.timeout
        while True:
            started = time.perf_counter()
            result = await probe()
            if result is not None:
                return result
            if time.perf_counter() > deadline:
                raise BenchError(f"timed out after {self.timeout:.0f}s waiting for {what}")
            await asyncio.sleep(max(0.0, self.poll - (time.perf_counter() - started)))

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
                return _since(t0)
            last = f"HTTP {response.status_code}: {response.text[:200]}"
            return None

        try:
            result: float = await self._until(probe, f"a 200 from {host or url}")
        except BenchError as exc:
            raise BenchError(f"{exc} (last: {last})") from None
        return result

    async def _docker(self, *args: str) -> str:
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

    def _baseline_body(self, host_port: int) -> Json:
        """What `docker create` sends for the same container as berth's task (`same_as`):
        its image and command, and the task's network and confinement (see `SAME_AS_TASK`),
        with its port published on 127.0.0.1:`host_port`."""
        key = f"{SERVICE_PORT}/tcp"
        return {
            "Image": self.image,
            "Cmd": ["/bin/sh", "-c", SERVICE_COMMAND],
            "Labels": {BENCH_LABEL: "1"},
            "ExposedPorts": {key: {}},
            "HostConfig": {
                **self.same_as,
                "PortBindings": {key: [{"HostIp": "127.0.0.1", "HostPort": str(host_port)}]},
            },
        }

    def _cli_flags(self) -> list[str]:
        """The `docker run` flags for the same settings as `_baseline_body`."""
        config = self.same_as
        flags: list[str] = []
        if config.get("NetworkMode"):
            flags += ["--network", config["NetworkMode"]]
        if config.get("Init"):
            flags.append("--init")
        if config.get("Memory"):
            flags += ["--memory", str(config["Memory"])]
        if config.get("MemorySwap"):
            flags += ["--memory-swap", str(config["MemorySwap"])]
        if config.get("NanoCpus"):
            flags += ["--cpus", f"{config['NanoCpus'] / 1e9:g}"]
        if config.get("CpuQuota"):
            flags += ["--cpu-quota", str(config["CpuQuota"])]
        if config.get("CpuPeriod"):
            flags += ["--cpu-period", str(config["CpuPeriod"])]
        if config.get("PidsLimit"):
            flags += ["--pids-limit", str(config["PidsLimit"])]
        for option in config.get("SecurityOpt") or []:
            flags += ["--security-opt", option]
        for cap in config.get("CapDrop") or []:
            flags += ["--cap-drop", cap]
        if config.get("CgroupnsMode"):
            flags += ["--cgroupns", config["CgroupnsMode"]]
        log = config.get("LogConfig") or {}
        if log.get("Type"):
            flags += ["--log-driver", log["Type"]]
            for name, value in (log.get("Config") or {}).items():
                flags += ["--log-opt", f"{name}={value}"]
        return flags

    async def _berth_get(self, workload_id: str) -> Json:
        response = await self.api.get(f"/v1/compute/{workload_id}")
        if response.status_code != 200:
            raise BenchError(f"GET workload answered {response.status_code}: {response.text}")
        body: Json = response.json()
        if body["status"] in ("failed", "crash_loop"):
            raise BenchError(f"service {body['status']}: {body['status_reason']}")
        return body

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

    async def delete_workload(self, workload_id: str) -> None:
        """Delete and wait until berth is quiet: containers removed, workload purged."""
        response = await self.api.delete(f"/v1/compute/{workload_id}")
        if response.status_code not in (200, 404):
            raise BenchError(f"delete answered {response.status_code}: {response.text}")
        label = f"{WORKLOAD_LABEL}={workload_id}"

        async def gone() -> bool | None:
            return True if not await self.engine.containers(label) else None

        await self._until(gone, f"containers of {workload_id} to be removed")

        async def purged() -> bool | None:
            response = await self.api.get(f"/v1/compute/{workload_id}")
            return True if response.status_code == 404 else None

        await self._until(purged, f"workload {workload_id} to be purged")

    async def create_anchor(self) -> str:
        """A long-running service of the same user for the whole run (as `python -m bench`
        does), so berth never removes and re-creates the user's network between samples."""
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

        async def running() -> bool | None:
            return True if (await self._berth_get(workload_id))["status"] == "running" else None

        await self._until(running, f"anchor {workload_id} to run")
        return workload_id

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

        async def stopped() -> bool | None:
            body = await self._berth_get(self.service_id)
            return True if body["status"] == "stopped" and body["running_tasks"] == 0 else None

        await self._until(stopped, f"{self.service_id} to be stopped")
        label = f"{WORKLOAD_LABEL}={self.service_id}"

        async def asleep() -> bool | None:
            # Asleep as a scaled-to-zero service is after a while: no task running, the
            # standby task created (see docs/api.md, "Scale to zero").
            states = [c["State"] for c in await self.engine.containers(label)]
            quiet = not [state for state in states if state not in ("exited", "created")]
            return True if quiet and "created" in states else None

        await self._until(asleep, f"{self.service_id} to sleep with its standby task")

    async def wake_berth(self) -> float:
        await self._berth_asleep()
        await asyncio.sleep(self.settle)
        host = f"{self.service_id}.localhost"
        t0 = time.perf_counter()
        try:
            response = await self.http.get(self.gateway, headers={"Host": host}, timeout=None)
        except httpx.TransportError as exc:
            raise BenchError(f"held GET failed: {type(exc).__name__}: {exc}") from None
        elapsed = _since(t0)
        if response.status_code != 200:
            raise BenchError(
                f"held GET answered {response.status_code} after {elapsed * 1000:.0f} ms:"
                f" {response.text[:300]}"
            )
        return elapsed

    async def _baseline_asleep(self) -> None:
        # Untimed. httpd is PID 1 without a SIGTERM handler here, so bound the grace.
        await self._docker("stop", "-t", "1", self.baseline_id)

    async def wake_cli(self) -> float:
        await self._baseline_asleep()
        t0 = time.perf_counter()
        await self._docker("start", self.baseline_id)
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
            await self._docker(
                "run",
                "-d",
                *self._cli_flags(),
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
    args: argparse.Namespace, server: BerthServer, key: str, engine: Engine, gateway_port: int
) -> tuple[dict[str, dict[str, Series]], dict[str, Any]]:
    series = {fig: {v: Series() for v in labels} for fig, (_, labels) in FIGURES.items()}
    extra: dict[str, Any] = {}
    api = httpx.AsyncClient(
        base_url=server.url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
        trust_env=False,
    )
    bench = WakeBench(
        api=api,
        engine=engine,
        image=args.image,
        gateway_port=gateway_port,
        poll=args.poll_ms / 1000,
        timeout=args.timeout,
        settle=args.settle_ms / 1000,
    )
    started = time.monotonic()
    anchor: str | None = None
    try:
        if not args.no_anchor:
            anchor = await bench.create_anchor()
        await bench.setup()
        measures = bench.measures()
        for round_ in range(args.warmup + args.iterations):
            if time.monotonic() - started > args.max_seconds:
                extra["stopped_early"] = f"--max-seconds {args.max_seconds:.0f} reached"
                print(f"stopping early: {extra['stopped_early']}", flush=True)
                break
            counted = round_ >= args.warmup
            line = []
            for figure, variants in measures.items():
                names = list(variants)
                shift = round_ % len(names)  # rotate so no variant always follows another
                for variant in names[shift:] + names[:shift]:
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
            label = f"round {round_ + 1 - args.warmup}/{args.iterations}" if counted else "warm-up"
            elapsed = time.monotonic() - started
            print(f"{label} done at {elapsed:.0f}s ({', '.join(line)})", flush=True)
        for workload_id in (bench.service_id, anchor):
            if workload_id:
                await bench.delete_workload(workload_id)
    finally:
        await bench.close()
        await api.aclose()
        await engine.remove_all(f"{BENCH_LABEL}=1")
    return series, extra


def render(figures: dict[str, dict[str, Any]]) -> str:
    header = (
        f"{'figure / variant':<48} {'n':>4} {'p50 ms':>8} {'p90 ms':>8} {'mean ms':>8}"
        f" {'÷docker':>8} {'÷API':>6} {'target':>8}"
    )
    lines = [header, "-" * len(header)]
    for figure in figures.values():
        lines.append(figure["title"])
        for variant, s in figure["variants"].items():
            errors = len(s["errors"])
            n = f"{s['n']}" + (f"!{errors}" if errors else "")
            cells = []
            for value, fmt in (
                (s["p50_ms"], ".0f"),
                (s["p90_ms"], ".0f"),
                (s["mean_ms"], ".0f"),
                (s["p50_ratio_vs_docker_cli"], ".2f"),
                (s["p50_ratio_vs_engine_api"], ".2f"),
            ):
                cells.append("-" if value is None else format(value, fmt))
            target = ""
            if variant == BERTH and s["p50_ratio_vs_docker_cli"] is not None:
                ok = s["p50_ratio_vs_docker_cli"] <= TARGET
                target = f"<={TARGET:g} " + ("ok" if ok else "MISS")
            lines.append(
                f"  {s['label']:<46} {n:>4} {cells[0]:>8} {cells[1]:>8} {cells[2]:>8}"
                f" {cells[3]:>8} {cells[4]:>6} {target:>8}"
            )
    return "\n".join(lines)


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
    gateway_port = server.gateway_port
    began = time.monotonic()

    async def session() -> tuple[dict[str, dict[str, Series]], dict[str, Any]]:
        engine = Engine(socket_path)
        try:
            meta["engine"] = await engine_info(engine, args.image)
            await asyncio.to_thread(server.start)
            key = await asyncio.to_thread(server.new_key)
            return await measure(args, server, key, engine, gateway_port)
        finally:
            await asyncio.to_thread(server.stop)
            if (server.data_dir / "instance.id").exists():
                await remove_instance_leftovers(engine, server.instance_id())
            await engine.remove_all(f"{BENCH_LABEL}=1")
            await engine.close()

    print(
        f"berth wake bench: {args.iterations} rounds (+{args.warmup} warm-up), poll"
        f" {args.poll_ms:g} ms, image {args.image}, berth at {server.url}, gateway"
        f" 127.0.0.1:{gateway_port}",
        flush=True,
    )
    try:
        series, extra = asyncio.run(session())
    except Exception:
        print(f"berth server log tail:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    meta.update(extra)
    meta["duration_seconds"] = round(time.monotonic() - began, 1)

    figures = {
        key: figure_record(title, {v: (labels[v], s) for v, s in series[key].items()})
        for key, (title, labels) in FIGURES.items()
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"meta": meta, "figures": figures}, indent=2) + "\n")

    engine_meta = meta.get("engine", {})
    print()
    print(
        f"engine {engine_meta.get('version')} (API {engine_meta.get('api_version')}), "
        f"{meta['cpus']} CPUs, berth {meta['berth_commit']}, {meta['duration_seconds']:.0f}s"
    )
    print(render(figures))
    print(
        "÷docker: p50 over the docker CLI baseline's p50 (the target's ratio); ÷API: over the"
        " raw Engine API's p50. Same run."
    )
    print(f"\nJSON: {args.output}")
    failed = any(s["errors"] for f in figures.values() for s in f["variants"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
