"""`python -m bench.load`: berth under many concurrent clients, next to a bare ASGI app.

`--clients` (32) concurrent clients, each with its own keep-alive connection, send a mix of
valid reads and writes on both API dialects (the Workloads API under /v1, company-scoped and
per-user, and the Containers API under /compute) for `--seconds` (180) after `--warmup` (10)
unmeasured seconds; see `berth.testing.load.mix` for the mix. berth runs as `berth serve`
with its default settings (approval gating off, per-key rate limiting off so the API itself
is measured, SSH and the HTTP gateway on free loopback ports).

The baseline is a bare ASGI app (`berth.testing.load.baseline.bare_app`: reads the body,
answers a small JSON body) served by the same uvicorn stack and options as berth
(`berth.server.uvicorn.run_asgi_server`), driven by the same client code with the same number of
clients and the same share of writes, for the same measured time: half before berth's run
and half after it, so a drift of the machine's load hits both sides alike.

Reported: requests/s, p50/p99, status counts (any 5xx, transport error or unexpected status
is a failure), berth's RSS (process tree, sampled every second) at rest, after the first
half, at the end, and the slope of a least-squares fit over the second half, CPU used by the
server and by the clients, and whether every acknowledged write is visible afterwards.
Everything stays on 127.0.0.1; the run stops by itself and removes berth's containers.

Output: a table on stdout and `bench/results/load.json`; exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.engine import Engine
from bench.harness import git_describe, remove_instance_leftovers
from berth.config import Settings
from berth.testing.load.baseline import BareClient, bare_app
from berth.testing.load.driver import drive
from berth.testing.load.mix import write_share
from berth.testing.load.record import LoadRecord
from berth.testing.load.run import LoadRun, new_http, run_berth_load, tenants_needed
from berth.testing.load.tenants import create_tenants
from berth.testing.process_memory import tree_cpu_seconds
from berth.testing.server import BerthServer, free_port

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "load.json"
SERVER_LOG_PROBLEMS = re.compile(r"Traceback|database is locked| ERROR ")
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description="berth under concurrent load next to a bare ASGI app, in one run.",
    )
    parser.add_argument("--seconds", type=float, default=180.0, help="measured load (180 s)")
    parser.add_argument("--warmup", type=float, default=10.0, help="unmeasured first (10 s)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (32)")
    parser.add_argument(
        "--job-runs-per-second", type=float, default=0.5, help="job runs, all clients (0.5)"
    )
    parser.add_argument("--image", default="berth-test/busybox:latest")
    parser.add_argument(
        "--env", action="append", default=[], metavar="BERTH_X=VALUE", help="a berth setting"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--docker-socket", default=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    )
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 256 or not 1 <= args.seconds <= 3600 or args.warmup < 0:
        parser.error("--clients 1-256, --seconds 1-3600, --warmup >= 0")
    for item in args.env:
        if "=" not in item or not item.startswith("BERTH_"):
            parser.error(f"--env takes BERTH_NAME=VALUE, got {item!r}")
    return args


def serve_bare(port: int) -> None:
    # Imported here so the parent process does not load the server for nothing.
    from berth.config import Settings  # noqa: PLC0415
    from berth.server.uvicorn import run_asgi_server  # noqa: PLC0415

    defaults = Settings()
    run_asgi_server(
        bare_app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        max_head_bytes=defaults.max_request_head_bytes,
        max_message_bytes=defaults.max_request_bytes,
    )


class BareServer:
    """The baseline in its own process, like berth."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.load", "--serve-bare", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the bare app exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the bare app did not answer on {self.url} in {timeout:.0f}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def bare_phase(
    url: str, pid: int, record: LoadRecord, *, clients: int, seconds: float, warmup: float
) -> dict[str, float]:
    """One half of the baseline; returns the CPU both sides used and the wall time."""
    https = [new_http(url) for _ in range(clients)]
    part = LoadRecord()
    bare = [
        BareClient(http=https[n], record=part, write_share=write_share(), seed=n)
        for n in range(clients)
    ]
    server_cpu, client_cpu, began = tree_cpu_seconds(pid), time.process_time(), time.monotonic()
    try:
        await drive(bare, record=part, seconds=seconds, warmup=warmup)
    finally:
        for http in https:
            await http.aclose()
    record.absorb(part)
    return {
        "wall": time.monotonic() - began,
        "server_cpu": tree_cpu_seconds(pid) - server_cpu,
        "client_cpu": time.process_time() - client_cpu,
    }


def fast_loop_factory() -> Any:
    """uvloop for the clients when installed (as uvicorn uses it for the servers): the client
    harness is Python too, and on a small machine its speed caps the baseline's figure."""
    try:
        import uvloop  # noqa: PLC0415 - optional

        return uvloop.new_event_loop
    except ImportError:
        return None


def server_log_problems(log: str) -> list[str]:
    """Lines of berth's log that name an error, a traceback or a lock timeout, each with the
    traceback lines that follow it (up to the next log record), so the cause is in the
    results file: the server's log is gone with the run's directory."""
    problems: list[str] = []
    inside = False
    for line in log.splitlines():
        if SERVER_LOG_PROBLEMS.search(line):
            problems.append(line)
            inside = True
        elif inside and not LOG_RECORD.match(line):
            problems.append(line)
        else:
            inside = False
        if len(problems) >= 200:
            break
    return problems


async def session(args: argparse.Namespace, work: Path, meta: dict[str, Any]) -> dict[str, Any]:
    overrides = {
        "BERTH_DEFAULT_GATED_ACTIONS": "[]",
        "BERTH_RATE_LIMIT_PER_SECOND": "0",
    }
    overrides.update(item.split("=", 1) for item in args.env)
    meta["server_overrides"] = overrides
    server = BerthServer(work / "data", env=overrides)
    bare = BareServer(work / "bare.log")
    engine = Engine(args.docker_socket.removeprefix("unix://"))
    half = args.seconds / 2
    baseline = LoadRecord(window_start=0.0, window_end=0.0)
    bare_usage: list[dict[str, float]] = []
    try:
        if not await engine.image_present(args.image):
            raise SystemExit(f"image {args.image!r} is not present locally (or pass --image)")
        await asyncio.to_thread(bare.start)
        assert bare.process is not None
        print(f"bare ASGI app: {args.clients} clients, {half:.0f}s (first half)", flush=True)
        bare_usage.append(
            await bare_phase(
                bare.url,
                bare.process.pid,
                baseline,
                clients=args.clients,
                seconds=half,
                warmup=args.warmup,
            )
        )
        settings = Settings(data_dir=server.data_dir, default_gated_actions=[])
        tenants = await create_tenants(settings, tenants_needed(args.clients), label="load")
        await asyncio.to_thread(server.start)
        assert server.process is not None
        print(
            f"berth: {args.clients} clients, {len(tenants)} tenants, {args.seconds:.0f}s"
            f" (+{args.warmup:.0f}s warm-up)",
            flush=True,
        )
        run: LoadRun = await run_berth_load(
            base_url=server.url,
            server_pid=server.process.pid,
            tenants=tenants,
            clients=args.clients,
            seconds=args.seconds,
            warmup=args.warmup,
            image=args.image,
            job_runs_per_second=args.job_runs_per_second,
        )
        print(f"bare ASGI app: {args.clients} clients, {half:.0f}s (second half)", flush=True)
        bare_usage.append(
            await bare_phase(
                bare.url,
                bare.process.pid,
                baseline,
                clients=args.clients,
                seconds=half,
                warmup=args.warmup,
            )
        )
    finally:
        await asyncio.to_thread(bare.stop)
        await asyncio.to_thread(server.stop)
        if (server.data_dir / "instance.id").exists():
            await remove_instance_leftovers(engine, server.instance_id())
            await engine.remove_volumes(f"dev.berth.instance={server.instance_id()}")
        await engine.close()
    wall = sum(u["wall"] for u in bare_usage)
    bare_summary = {
        **baseline.summary(),
        "wall_seconds": round(wall, 1),
        "server_cpu_percent": round(100 * sum(u["server_cpu"] for u in bare_usage) / wall, 1),
        "client_cpu_percent": round(100 * sum(u["client_cpu"] for u in bare_usage) / wall, 1),
    }
    berth_summary = run.summary()
    berth_summary["server_log_problems"] = server_log_problems(server.log_tail(10**8))
    return {"berth": berth_summary, "bare_asgi": bare_summary}


def render(report: dict[str, Any]) -> str:
    berth, bare = report["berth"], report["bare_asgi"]
    lines = [
        f"{'server':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'5xx':>5}"
        f" {'errors':>6} {'server CPU':>10} {'client CPU':>10}",
    ]
    for name, s in (("bare ASGI", bare), ("berth", berth)):
        errors = s["transport_errors"] + s["unexpected_statuses"]
        lines.append(
            f"{name:<10} {s['requests_per_second']:>8.0f} {s['p50_ms']:>8.1f} {s['p99_ms']:>8.1f}"
            f" {s['max_ms']:>8.1f} {s['server_errors_5xx']:>5} {errors:>6}"
            f" {s['server_cpu_percent']:>9.0f}% {s['client_cpu_percent']:>9.0f}%"
        )
    lines.append(f"berth ÷ bare ASGI requests/s: {report['ratio_requests_per_second']:.3f}")
    m = berth["memory"]
    lines.append(
        f"berth RSS: {m['start_mib']:.1f} MiB at rest, {m['after_warmup_mib']:.1f} at half-time,"
        f" {m['end_mib']:.1f} at the end (peak {m['peak_mib']:.1f}); growth over the second"
        f" half {m['growth_mib']:+.1f} MiB, slope {m['slope_mib_per_minute']:+.2f} MiB/min"
    )
    lines.append(
        f"writes: {berth['acknowledged_writes']} acknowledged, {berth['writes_checked']} facts"
        f" checked afterwards, {len(berth['writes_missing'])} missing; job runs:"
        f" {berth['job_runs_checked']} checked, {len(berth['job_runs_not_succeeded'])} not"
        f" succeeded; server log problems: {len(berth['server_log_problems'])}"
    )
    lines.append("berth per operation (n, p50 ms, p99 ms):")
    for name, op in berth["operations"].items():
        lines.append(f"  {name:<28} {op['n']:>7} {op['p50_ms']:>8.1f} {op['p99_ms']:>8.1f}")
    return "\n".join(lines)


def failures(report: dict[str, Any]) -> list[str]:
    berth = report["berth"]
    found = list(berth["failures"]) + list(report["bare_asgi"]["failures"])
    found += berth["writes_missing"] + berth["job_runs_not_succeeded"]
    found += berth["server_log_problems"]
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {k: v for k, v in vars(args).items() if k not in ("output", "serve_bare")},
        "berth_commit": git_describe(),
        "cpus": os.cpu_count(),
    }
    work = Path(tempfile.mkdtemp(prefix="berth-bench-load-"))
    began = time.monotonic()
    try:
        with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
            report = runner.run(session(args, work, meta))
    except BaseException:
        log = work / "server.log"
        if log.exists():
            print(f"berth server log tail:\n{log.read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    meta["duration_seconds"] = round(time.monotonic() - began, 1)
    bare_rps = report["bare_asgi"]["requests_per_second"] or 0
    report["ratio_requests_per_second"] = (
        round((report["berth"]["requests_per_second"] or 0) / bare_rps, 4) if bare_rps else None
    )
    report = {"meta": meta, **report}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(f"{meta['cpus']} CPUs, berth {meta['berth_commit']}, {meta['duration_seconds']:.0f}s")
    print(render(report))
    problems = failures(report)
    for problem in problems[:20]:
        print(f"FAILURE: {problem}")
    print(f"\nJSON: {args.output}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
