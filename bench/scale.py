"""What berth's costs do as the workloads grow: `python -m bench.scale`.

Starts a berth server of its own (default settings, but per-key rate limiting off and no
action gated, so the API itself is measured), one user whose `max_workloads` is raised with
`berth admin update-user`, `--services` running services (each `exec sleep 3600` with a
small CPU and memory size), and then grows the count of schedules that never fire in a run
(`0 3 1 1 *`: they exist and are listed, and start no task) through `--sizes` (100, 1,000,
10,000), created by `--clients` concurrent clients. At each size, once it is reached:

- `--reads` rounds of three reads, interleaved: the first page of `GET /v1/compute?limit=100`,
  a deep page (the cursor that leaves the 100 oldest workloads: the last page) and
  `GET /v1/compute/{id}` of a schedule picked at random;
- the server process's RSS (`VmRSS` of `/proc/<pid>/status`);
- `--creates` creates, one at a time from one client (so the count goes from the size to the
  size plus `--creates`);
- every full reconcile pass the server logged from the end of the growth to the end of the
  size's measurements (the reconciler logs each pass's duration at debug; the server here is
  started by a wrapper that turns that one logger on), waiting for one if none came.

Each figure at every size is divided by its value at the first size: the goals are create
p99 and list-page p99 within 1.5x at 10,000, and RSS under 300 MB there.

It stops by itself: a request gives up after `--timeout` s, no new size starts after
`--max-seconds`, and at the end the services are deleted, the server stopped and every
container and network of its instance removed. Output: the table on stdout and
`bench/results/scale.json`; exit status 1 if a request failed or a size was not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.engine import Engine
from bench.harness import BenchError, git_describe, remove_instance_leftovers
from bench.stats import percentile
from berth.testing.process_memory import MIB, rss_bytes
from berth.testing.server import BerthServer

RESULTS = Path(__file__).resolve().parent / "results" / "scale.json"
NEVER_IN_THE_RUN = "0 3 1 1 *"
PAGE = 100
WALK_PAGE = 500
WARM_UP = 10
"""Rounds of the reads not counted at each size (connections, caches, first-call paths)."""
PASS_LINE = re.compile(
    r"berth\.reconciler: full pass: (\d+) active runs, (\d+) workloads read, (-?\d+) tasks"
    r" in ([\d.]+) ms(?: \(listing the engine's tasks ([\d.]+) ms of it\))?"
)
FIGURES = (
    ("create", "create"),
    ("first page", "list, first page of 100"),
    ("deep page", "list, last page of 100"),
    ("get", "get one workload"),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument(
        "--sizes", default="100,1000,10000", help="schedule counts (100,1000,10000)"
    )
    parser.add_argument("--creates", type=int, default=200, help="creates timed per size (200)")
    parser.add_argument("--reads", type=int, default=200, help="rounds of the reads per size (200)")
    parser.add_argument("--services", type=int, default=50, help="running services (50)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent creating clients (4)")
    parser.add_argument("--timeout", type=float, default=60.0, help="per request or wait (60 s)")
    parser.add_argument(
        "--max-seconds", type=float, default=1800.0, help="no new size after this (1800 s)"
    )
    parser.add_argument("--image", default="berth-test/busybox:latest")
    parser.add_argument("--docker-socket", default="unix:///var/run/docker.sock")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(size) for size in args.sizes.split(",")})
    except ValueError:
        parser.error("--sizes takes counts separated by commas, e.g. 100,1000")
    if not args.sizes or args.sizes[0] < 1 or args.sizes[-1] > 100_000:
        parser.error("--sizes: 1 to 100000")
    if not 1 <= args.creates <= 10_000 or not 1 <= args.reads <= 10_000:
        parser.error("--creates and --reads: 1 to 10000")
    if not 0 <= args.services <= 1000 or not 1 <= args.clients <= 64:
        parser.error("--services 0-1000, --clients 1-64")
    return args


def serve_berth(argv: list[str]) -> int:
    """The server process: `berth ARGV` with the reconciler's per-pass debug line on (the
    root logger stays at berth's level, so no other debug output is produced)."""
    from berth.cli.main import main as berth_main  # noqa: PLC0415

    logging.getLogger("berth.reconciler").setLevel(logging.DEBUG)
    return berth_main(argv)


class Scale:
    """The run's client side: one user's API key, the schedules made so far, the log read."""

    def __init__(self, server: BerthServer, key: str, args: argparse.Namespace) -> None:
        self.server = server
        self.args = args
        self.headers = {"Authorization": f"Bearer {key}"}
        self.http = self.client()
        self.made = 0
        self.log_offset = 0

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.server.url, headers=self.headers, timeout=self.args.timeout
        )

    async def expect(self, http: httpx.AsyncClient, method: str, path: str, **kw: Any) -> Any:
        response = await http.request(method, path, **kw)
        if response.status_code not in (200, 201):
            raise BenchError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    async def create_schedule(self, http: httpx.AsyncClient) -> float:
        """Create the next schedule; the seconds its POST took."""
        n = self.made
        self.made += 1
        body = {
            "name": f"nightly-{n:06d}",
            "type": "schedule",
            "image": self.args.image,
            "command": "true",
            "schedule_expr": NEVER_IN_THE_RUN,
        }
        started = time.perf_counter()
        await self.expect(http, "POST", "/v1/compute", json=body)
        return time.perf_counter() - started

    async def grow(self, target: int) -> None:
        """Create schedules with `--clients` concurrent clients until `target` exist."""

        async def creator() -> None:
            async with self.client() as http:
                while self.made < target:
                    await self.create_schedule(http)

        await asyncio.gather(*(creator() for _ in range(self.args.clients)))

    async def start_services(self) -> None:
        """`--services` small services running `sleep`, each with its task running."""
        queue = list(range(self.args.services))

        async def creator() -> None:
            async with self.client() as http:
                while queue:
                    n = queue.pop()
                    body = {
                        "name": f"sleeper-{n:04d}",
                        "type": "service",
                        "image": self.args.image,
                        "command": "exec sleep 3600",
                        "cpu": 0.02,
                        "memory_mb": 16,
                    }
                    await self.expect(http, "POST", "/v1/compute", json=body)

        await asyncio.gather(*(creator() for _ in range(self.args.clients)))
        deadline = time.monotonic() + max(self.args.timeout, 2 * self.args.services)
        while (running := len(await self.running_services())) < self.args.services:
            if time.monotonic() > deadline:
                raise BenchError(f"{running} of {self.args.services} services ran in time")
            await asyncio.sleep(0.5)

    async def settled(self) -> None:
        """Until a full pass logged after the services ran saw every one's task (the
        launches' aftermath is then over: their engine events, the passes they asked for)."""
        deadline = time.monotonic() + self.args.timeout
        while not any(p["tasks"] >= self.args.services for p in self.passes()):
            if time.monotonic() > deadline:
                raise BenchError("no full pass saw every service's task in time")
            await asyncio.sleep(0.5)

    async def running_services(self) -> list[str]:
        services = await self.walk({"type": "service"})
        return [s["id"] for s in services if s["running_tasks"] >= 1]

    async def walk(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """Every workload of the list, newest first, through its cursors."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {**params, "limit": str(WALK_PAGE), **({"cursor": cursor} if cursor else {})}
            page = await self.expect(self.http, "GET", "/v1/compute", params=query)
            items += page["workloads"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    async def deep_cursor(self, total: int) -> str | None:
        """The cursor after the `total - PAGE` newest workloads: its page is the last one."""
        skip = total - PAGE
        cursor: str | None = None
        while skip > 0:
            limit = min(skip, WALK_PAGE)
            query = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
            page = await self.expect(self.http, "GET", "/v1/compute", params=query)
            cursor = page["next_cursor"]
            skip -= limit
        return cursor

    async def timed_get(self, path: str, params: dict[str, str] | None = None) -> float:
        started = time.perf_counter()
        await self.expect(self.http, "GET", path, params=params)
        return time.perf_counter() - started

    async def delete_services(self) -> None:
        services = await self.walk({"type": "service"})
        for service in services:
            await self.expect(self.http, "DELETE", f"/v1/compute/{service['id']}")

    def passes(self) -> list[dict[str, float]]:
        """The full passes logged since the last call."""
        with self.server.log_path.open("rb") as log:
            log.seek(self.log_offset)
            text = log.read()
        complete = text.rfind(b"\n") + 1
        self.log_offset += complete
        return [
            {
                "active_runs": int(m.group(1)),
                "workloads_read": int(m.group(2)),
                "tasks": int(m.group(3)),
                "ms": float(m.group(4)),
                "listing_ms": float(m.group(5) or 0),
            }
            for m in PASS_LINE.finditer(text[:complete].decode(errors="replace"))
        ]


def summary(seconds: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
    }


async def measure_size(scale: Scale, size: int) -> dict[str, Any]:
    """Grow to `size` schedules, then the reads, RSS, creates and full passes there."""
    args = scale.args
    grow_started = time.perf_counter()
    await scale.grow(size)
    grown_in = time.perf_counter() - grow_started
    scale.passes()  # passes logged while growing do not count
    workloads = await scale.walk({})
    ids = [w["id"] for w in workloads if w["type"] == "schedule"]
    deep = await scale.deep_cursor(len(workloads))
    pick = random.Random(size)
    samples: dict[str, list[float]] = {name: [] for name, _ in FIGURES}
    for n in range(WARM_UP + args.reads):
        if n == WARM_UP:
            samples = {name: [] for name, _ in FIGURES}
        samples["first page"].append(await scale.timed_get("/v1/compute", {"limit": str(PAGE)}))
        deep_query = {"limit": str(PAGE), **({"cursor": deep} if deep else {})}
        samples["deep page"].append(await scale.timed_get("/v1/compute", deep_query))
        samples["get"].append(await scale.timed_get(f"/v1/compute/{pick.choice(ids)}"))
    assert scale.server.process is not None
    rss = rss_bytes(scale.server.process.pid)
    for _ in range(args.creates):
        samples["create"].append(await scale.create_schedule(scale.http))
    passes = scale.passes()
    deadline = time.monotonic() + args.timeout
    while not passes and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        passes = scale.passes()
    record: dict[str, Any] = {
        "schedules": size,
        "workloads_listed": len(workloads),
        "grown_in_s": round(grown_in, 1),
        **{name: summary(values) for name, values in samples.items()},
        "rss_mb": round(rss / MIB, 1),
        "full_passes": passes,
    }
    if passes:
        record["full_pass_ms"] = round(percentile([p["ms"] for p in passes], 50), 1)
        without = [p["ms"] - p["listing_ms"] for p in passes]
        record["full_pass_without_listing_ms"] = round(percentile(without, 50), 1)
    return record


def ratios(sizes: list[dict[str, Any]]) -> list[dict[str, float | None]]:
    """Each size's figures divided by the first size's."""
    base = sizes[0]

    def over(value: float | None, of: float | None) -> float | None:
        return None if value is None or not of else round(value / of, 2)

    out = []
    for size in sizes:
        row: dict[str, float | None] = {}
        for name, _ in FIGURES:
            for q in ("p50_ms", "p99_ms"):
                row[f"{name} {q[:3]}"] = over(size[name][q], base[name][q])
        row["rss"] = over(size["rss_mb"], base["rss_mb"])
        row["full pass"] = over(size.get("full_pass_ms"), base.get("full_pass_ms"))
        row["full pass without listing"] = over(
            size.get("full_pass_without_listing_ms"), base.get("full_pass_without_listing_ms")
        )
        out.append(row)
    return out


def render(sizes: list[dict[str, Any]], ratio_rows: list[dict[str, float | None]]) -> str:
    head = f"{'schedules':>9}"
    for _, label in FIGURES:
        head += f" | {label + ' p50/p99 ms':>34}"
    lines = [head + f" | {'RSS MB':>7} | {'full pass ms (without the engine list)':>38}"]
    for size, row in zip(sizes, ratio_rows, strict=True):
        line = f"{size['schedules']:>9}"
        for name, _ in FIGURES:
            f = size[name]
            x50, x99 = row[f"{name} p50"], row[f"{name} p99"]
            cell = f"{f['p50_ms']:.1f}/{f['p99_ms']:.1f} (x{x50}/x{x99})"
            line += f" | {cell:>34}"
        nan = float("nan")
        full = size.get("full_pass_ms", nan)
        without = size.get("full_pass_without_listing_ms", nan)
        line += f" | {size['rss_mb']:>7.0f} | {f'{full:.0f} ({without:.0f})':>38}"
        lines.append(line)
    last, row = sizes[-1], ratio_rows[-1]
    lines.append(
        f"at {last['schedules']}: create p99 x{row['create p99']}, first page p99"
        f" x{row['first page p99']}, deep page p99 x{row['deep page p99']} (goal <= 1.5x);"
        f" RSS {last['rss_mb']:.0f} MB (goal < 300 MB); full pass x{row['full pass']}"
        f" (without the engine list x{row['full pass without listing']})"
    )
    return "\n".join(lines)


async def session(server: BerthServer, key: str, args: argparse.Namespace) -> dict[str, Any]:
    scale = Scale(server, key, args)
    started = time.monotonic()
    measured: list[dict[str, Any]] = []
    try:
        await scale.start_services()
        await scale.settled()
        print(f"{args.services} services running", flush=True)
        for size in args.sizes:
            if time.monotonic() - started > args.max_seconds:
                print(f"--max-seconds reached: {size} not measured", flush=True)
                break
            record = await measure_size(scale, size)
            measured.append(record)
            print(
                f"{size}: create p99 {record['create']['p99_ms']} ms, first page p99"
                f" {record['first page']['p99_ms']} ms, RSS {record['rss_mb']} MB,"
                f" full pass {record.get('full_pass_ms')} ms (grown in {record['grown_in_s']} s)",
                flush=True,
            )
        await scale.delete_services()
    finally:
        await scale.http.aclose()
    return {"sizes": measured, "seconds": round(time.monotonic() - started, 1)}


async def clean_up(socket_path: str, server: BerthServer) -> int:
    if not (server.data_dir / "instance.id").exists():
        return 0
    engine = Engine(socket_path)
    try:
        return await remove_instance_leftovers(engine, server.instance_id())
    finally:
        await engine.close()


def wait_services_gone(server: BerthServer, socket_path: str, timeout: float) -> None:
    """After the deletes: until the engine holds none of the instance's containers."""

    async def left() -> int:
        engine = Engine(socket_path)
        try:
            label = f"dev.berth.instance={server.instance_id()}"
            return len(await engine.containers(label))
        finally:
            await engine.close()

    deadline = time.monotonic() + timeout
    while asyncio.run(left()) and time.monotonic() < deadline:
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    if raw[:1] == ["--serve-berth"]:
        return serve_berth(raw[1:])
    args = parse_args(argv)
    socket_path = args.docker_socket.removeprefix("unix://")
    overrides = {"BERTH_DEFAULT_GATED_ACTIONS": "[]", "BERTH_RATE_LIMIT_PER_SECOND": "0"}
    meta = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "server_overrides": overrides,
        "berth_commit": git_describe(),
    }
    work = Path(tempfile.mkdtemp(prefix="berth-bench-scale-"))
    command = [sys.executable, "-m", "bench.scale", "--serve-berth"]
    server = BerthServer(work / "data", env=overrides, command=command)
    try:
        server.start()
        user = server.admin("create-user", "--email", "bench-scale@example.com")
        most = args.sizes[-1] + args.creates * len(args.sizes) + args.services + 10
        server.admin(
            "update-user",
            *("--user", user["id"], "--max-workloads", str(most), "--credits", "100000"),
        )
        key: str = server.admin("create-key", "--user", user["id"])["key"]
        result = asyncio.run(session(server, key, args))
        wait_services_gone(server, socket_path, args.timeout)
    except BaseException:
        print(f"berth server log tail:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        server.stop()
        left = asyncio.run(clean_up(socket_path, server))
        if left:
            print(f"removed {left} containers left behind", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    sizes = result["sizes"]
    report = {"meta": meta, **result, "ratios": ratios(sizes) if sizes else []}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    if sizes:
        print(render(sizes, report["ratios"]))
    print(f"JSON: {args.output}")
    return 0 if len(sizes) == len(args.sizes) else 1


if __name__ == "__main__":
    sys.exit(main())
