"""`python -m bench.api`: berth's API reads next to a bare FastAPI app, with `wrk`.

Three reads, each against a bare FastAPI app that answers the very bytes berth answered:

- `GET /v1/compute/{id}`: one workload (a schedule that never fires in the run, so nothing
  runs: the figure is the API's, not the engine's);
- `GET /v1/compute`: a list of 100 such workloads;
- `GET /compute/containers/{id}`: a running dev box made through the Containers API.

berth runs as `berth serve` (`berth.testing.server.BerthServer`) with per-key rate limiting off
(`BERTH_RATE_LIMIT_PER_SECOND=0`) and approval gating off; the bare app runs in its own
process on the same server stack (`berth.server.uvicorn.run_asgi_server`: uvicorn, the same loop,
HTTP implementation and options). `wrk` drives both with `--connections` (32) keep-alive
connections for `--seconds` (5) per run, sending berth's `Authorization` header to both. One
round measures every read on both servers, the order rotated from round to round; a read's
figure is the median of its per-round ratios (`--rounds`, 3), since the machine is shared.
The server CPU column is berth's (or the bare app's) process CPU per answered request.

Needs `wrk` (Debian: `apt-get install wrk`), the Docker engine and the test image (the dev
box). Everything stays on 127.0.0.1; the run stops by itself and removes its containers.
Output: a table on stdout and `bench/results/api.json`; exit status 1 if any request of
berth's failed or answered anything but 200.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.engine import Engine
from bench.gateway import UNITS, process
from bench.harness import git_describe, remove_instance_leftovers
from berth.testing.load.mix import new_public_key
from berth.testing.process_memory import tree_cpu_seconds
from berth.testing.server import BerthServer, free_port

RESULTS = Path(__file__).resolve().parent / "results" / "api.json"
LISTED = 100
NEVER_IN_THE_RUN = "0 0 1 1 *"
"""Once a year: the schedules exist and are listed, and never start a task in a run."""
READS = ("get workload", "list 100 workloads", "get container")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk run (5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--image", default="berth-test/busybox:latest")
    parser.add_argument("--docker-socket", default="unix:///var/run/docker.sock")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "BODIES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 50 or not 1 <= args.seconds <= 120:
        parser.error("--rounds 1-50, --seconds 1-120")
    if not 1 <= args.connections <= 1024 or not 1 <= args.threads <= args.connections:
        parser.error("--connections 1-1024, --threads 1..connections")
    return args


def serve_bare(port: int, bodies_path: Path) -> None:
    """The baseline process: a FastAPI app answering berth's own bytes for each read."""
    # Imported here: the parent process never serves.
    from fastapi import FastAPI, Response  # noqa: PLC0415

    from berth.config import Settings  # noqa: PLC0415
    from berth.server.uvicorn import run_asgi_server  # noqa: PLC0415

    bodies = {name: body.encode() for name, body in json.loads(bodies_path.read_text()).items()}
    app = FastAPI()

    @app.get("/v1/compute/{workload_id}")
    async def get_workload(workload_id: str) -> Response:
        return Response(bodies["get workload"], media_type="application/json")

    @app.get("/v1/compute")
    async def list_workloads() -> Response:
        return Response(bodies["list 100 workloads"], media_type="application/json")

    @app.get("/compute/containers/{container_id}")
    async def get_container(container_id: str) -> Response:
        return Response(bodies["get container"], media_type="application/json")

    defaults = Settings()
    run_asgi_server(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        max_head_bytes=defaults.max_request_head_bytes,
        max_message_bytes=defaults.max_request_bytes,
    )


def prepare(server: BerthServer, image: str) -> tuple[str, dict[str, str]]:
    """A user with an API key, 101 workloads and a running dev box; returns the key and the
    path of each read."""
    user = server.admin("create-user", "--email", "bench-api@example.com")
    server.admin("update-user", "--user", user["id"], "--max-workloads", str(LISTED + 10))
    key: str = server.admin("create-key", "--user", user["id"])["key"]
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        ids = []
        for n in range(LISTED):
            body = {
                "name": f"sched-{n:03d}",
                "type": "schedule",
                "image": image,
                "command": "true",
                "schedule_expr": NEVER_IN_THE_RUN,
                "env": {"MODE": "bench", "INDEX": str(n)},
            }
            ids.append(expect(http.post("/v1/compute", json=body), 201)["id"])
        expect(http.post(f"/v1/compute/{ids[0]}/secrets", json={"key": "K", "value": "v"}), 200)
        ssh_key = expect(
            http.post(
                "/compute/ssh-keys",
                json={"name": "bench", "public_key": new_public_key("bench@api")},
            ),
            201,
        )
        box = {"name": "bench-box", "ssh_key_ids": [ssh_key["id"]], "image": image}
        box_id = expect(http.post("/compute/containers", json=box), 201)["id"]
        deadline = time.monotonic() + 120
        while expect(http.get(f"/compute/containers/{box_id}"), 200)["status"] != "running":
            if time.monotonic() > deadline:
                raise SystemExit(f"the dev box {box_id} did not run within 120 s")
            time.sleep(0.2)
    return key, {
        "get workload": f"/v1/compute/{ids[0]}",
        "list 100 workloads": "/v1/compute",
        "get container": f"/compute/containers/{box_id}",
    }


def expect(response: httpx.Response, status: int) -> Any:
    if response.status_code != status:
        raise SystemExit(f"{response.request.url}: {response.status_code} {response.text[:500]}")
    return response.json()


def run_wrk(
    port: int, path: str, key: str, *, seconds: float, connections: int, threads: int
) -> dict[str, float]:
    """One wrk run: requests, requests/s, p50/p99 in ms, and errors (non-2xx, socket)."""
    out = subprocess.run(
        [
            *("wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency"),
            *("-H", f"Authorization: Bearer {key}", f"http://127.0.0.1:{port}{path}"),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    result: dict[str, float] = {}
    done = re.search(r"(\d+) requests in", out)
    result["requests"] = float(done.group(1)) if done else 0.0
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(rps.group(1)) if rps else 0.0
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        result[f"p{pct}_ms"] = float(match.group(1)) * UNITS[match.group(2)] if match else -1.0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result["errors"] = float(non_2xx.group(1)) if non_2xx else 0.0
    socket_errors = re.search(r"Socket errors:.*", out)
    if socket_errors:
        result["errors"] += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))
    return result


def wrk(port: int, path: str, key: str, args: argparse.Namespace, pid: int) -> dict[str, float]:
    """`run_wrk`, plus the server process's CPU per answered request."""
    cpu = tree_cpu_seconds(pid)
    result = run_wrk(
        port,
        path,
        key,
        seconds=args.seconds,
        connections=args.connections,
        threads=args.threads,
    )
    used = tree_cpu_seconds(pid) - cpu
    result["cpu_ms_per_request"] = 1000 * used / max(result["requests"], 1)
    return result


@contextlib.contextmanager
def bare_server(bodies: dict[str, str], work: Path) -> Iterator[tuple[int, int]]:
    path = work / "bodies.json"
    path.write_text(json.dumps(bodies))
    port = free_port()
    argv = [sys.executable, "-m", "bench.api", "--serve-bare", str(port), str(path)]
    with process(argv, port, work / "bare.log") as proc:
        yield port, proc.pid


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    overrides = {
        "BERTH_DEFAULT_GATED_ACTIONS": "[]",
        "BERTH_RATE_LIMIT_PER_SECOND": "0",
    }
    server = BerthServer(work / "data", env=overrides)
    try:
        server.start()
        assert server.process is not None
        key, paths = prepare(server, args.image)
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}) as http:
            bodies = {name: http.get(server.url + path).text for name, path in paths.items()}
        with bare_server(bodies, work) as (bare_port, bare_pid):
            targets = {"bare": (bare_port, bare_pid), "berth": (server.port, server.process.pid)}
            for port, pid in targets.values():  # warm both: caches, connections, JIT-free paths
                for path in paths.values():
                    warm = argparse.Namespace(**{**vars(args), "seconds": 1})
                    wrk(port, path, key, warm, pid)
            rounds: list[dict[str, dict[str, dict[str, float]]]] = []
            for n in range(args.rounds):
                measured: dict[str, dict[str, dict[str, float]]] = {}
                for read in READS:
                    order = list(targets) if (n + READS.index(read)) % 2 == 0 else ["berth", "bare"]
                    measured[read] = {
                        name: wrk(targets[name][0], paths[read], key, args, targets[name][1])
                        for name in order
                    }
                rounds.append(measured)
                print(
                    f"round {n + 1}/{args.rounds}: "
                    + ", ".join(
                        f"{read} {m['berth']['rps'] / max(m['bare']['rps'], 1):.2f}x"
                        for read, m in measured.items()
                    ),
                    flush=True,
                )
        return {"paths": paths, "rounds": rounds, "server_overrides": overrides}
    finally:
        server.stop()


def summarise(rounds: list[dict[str, dict[str, dict[str, float]]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for read in READS:
        ratios = [r[read]["berth"]["rps"] / max(r[read]["bare"]["rps"], 1) for r in rounds]
        median_round = rounds[sorted(range(len(rounds)), key=ratios.__getitem__)[len(rounds) // 2]]
        summary[read] = {
            "ratio": round(statistics.median(ratios), 3),
            "ratios": [round(r, 3) for r in ratios],
            "median_round": median_round[read],
            "berth_errors": sum(r[read]["berth"]["errors"] for r in rounds),
        }
    return summary


def render(summary: dict[str, Any]) -> str:
    lines = [
        f"{'read':<20} {'server':<6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'CPU ms/req':>10} {'errors':>6}"
    ]
    for read, s in summary.items():
        for name in ("bare", "berth"):
            m = s["median_round"][name]
            lines.append(
                f"{read:<20} {name:<6} {m['rps']:>8.0f} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f}"
                f" {m['cpu_ms_per_request']:>10.3f} {m['errors']:>6.0f}"
            )
    for read, s in summary.items():
        lines.append(
            f"{read}: berth ÷ bare FastAPI {s['ratio']:.2f}x (median of rounds "
            f"{', '.join(f'{r:.2f}' for r in s['ratios'])}; target >= 0.5x)"
        )
    return "\n".join(lines)


async def clean_up(socket_path: str, data_dir: Path) -> None:
    if not (data_dir / "instance.id").exists():
        return
    instance = (data_dir / "instance.id").read_text().strip().lower()
    engine = Engine(socket_path)
    try:
        await remove_instance_leftovers(engine, instance)
        await engine.remove_volumes(f"dev.berth.instance={instance}")
    finally:
        await engine.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        serve_bare(int(args.serve_bare[0]), Path(args.serve_bare[1]))
        return 0
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    meta = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {k: v for k, v in vars(args).items() if k not in ("output", "serve_bare")},
        "berth_commit": git_describe(),
    }
    work = Path(tempfile.mkdtemp(prefix="berth-bench-api-"))
    try:
        measured = measure(args, work)
    except BaseException:
        log = work / "server.log"
        if log.exists():
            print(f"berth server log tail:\n{log.read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        asyncio.run(clean_up(args.docker_socket.removeprefix("unix://"), work / "data"))
        shutil.rmtree(work, ignore_errors=True)
    summary = summarise(measured["rounds"])
    report = {"meta": meta, **measured, "summary": summary}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(render(summary))
    print(f"JSON: {args.output}")
    return 1 if any(s["berth_errors"] for s in summary.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
