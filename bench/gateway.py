"""`python -m bench.gateway`: berth's HTTP gateway next to nginx as a reverse proxy.

Both proxies forward to the same upstream (an nginx server block answering a small static
body) on loopback; `wrk` drives each for `--seconds` (5) per run:

- throughput: `--connections` (64) keep-alive connections, `--threads` (2) wrk threads,
  `--rounds` (3) runs of each target interleaved; the figure is the median round's ratio;
- latency: one connection, so p50/p99 are per-request latency without queueing.

The upstream is also measured directly, so "added" latency is proxy minus direct. Ratios
are taken in the same run. Needs `wrk` and `nginx` on PATH (Debian: `apt-get install wrk
nginx-light`). Everything runs on 127.0.0.1 and is stopped at the end (a temp directory
holds nginx's config and logs). The gateway runs in its own process (uvloop when
installed) with berth's limit of new connections per client address (the defaults of
`BERTH_GATEWAY_CONNECTIONS_PER_SECOND` and `BERTH_GATEWAY_CONNECTION_BURST`, which the
keep-alive connections of a run stay far below), as it does inside `berth serve`.

Output: a table on stdout and `bench/results/gateway.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from berth.config import Settings
from berth.gateway.http.proxy import HttpGateway
from berth.gateway.http.public_gateway import connection_limit
from berth.gateway.http.route_table import LoopbackAddress, Route, RouteTable
from berth.testing.server import free_port

RESULTS = Path(__file__).resolve().parent / "results" / "gateway.json"
HOST = "app.localhost"


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{upstream};
        location / {{ default_type text/plain; return 200 "hello from the upstream\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{proxy};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }}
    }}
}}
"""


@contextlib.contextmanager
def process(argv: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def run_wrk(port: int, *, seconds: float, connections: int, threads: int) -> dict[str, float]:
    """One wrk run: requests/s and p50/p99 latency in ms (errors counted)."""
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--latency",
            "-H",
            f"Host: {HOST}",
            f"http://127.0.0.1:{port}/",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    result: dict[str, float] = {}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(rps.group(1)) if rps else 0.0
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        result[f"p{pct}_ms"] = float(match.group(1)) * UNITS[match.group(2)] if match else -1.0
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*", out)
    result["errors"] = float(errors.group(1)) if errors else 0.0
    if socket_errors:
        result["errors"] += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))
    return result


def serve_gateway(port: int, upstream: int) -> None:
    """The gateway process: route app.localhost on `port` to the upstream until SIGTERM."""
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: PLC0415 - optional speed-up, as uvicorn uses it

        uvloop.install()

    async def main() -> None:
        table = RouteTable("localhost")
        table.set_routes({("app", port): Route("app", (LoopbackAddress("127.0.0.1", upstream),))})
        gateway = HttpGateway(
            host="127.0.0.1",
            port=port,
            route_table=table,
            runtime=None,
            connection_limit=connection_limit(Settings()),  # as `berth serve` limits clients
        )
        await gateway.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await gateway.stop()

    asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk run (5)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved throughput runs per target (3)"
    )
    parser.add_argument("--serve-gateway", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_gateway:
        serve_gateway(*args.serve_gateway)
        return 0
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: apt-get install wrk nginx-light", file=sys.stderr)
            return 2

    upstream, nginx_port, gateway_port = free_port(), free_port(), free_port()
    results: dict[str, Any] = {"settings": vars(args) | {"serve_gateway": None}}
    with tempfile.TemporaryDirectory(prefix="berth-bench-gw-") as tmp:
        work = Path(tmp)
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=work, upstream=upstream, proxy=nginx_port))
        nginx = ["nginx", "-p", str(work), "-c", str(conf)]
        gateway = [sys.executable, "-m", "bench.gateway", "--serve-gateway"]
        gateway += [str(gateway_port), str(upstream)]
        with (
            process(nginx, nginx_port, work / "nginx.out"),
            process(gateway, gateway_port, work / "gateway.out"),
        ):
            wait_port(upstream)
            targets = {"direct": upstream, "nginx": nginx_port, "berth": gateway_port}
            for port in targets.values():  # warm both pools
                run_wrk(port, seconds=1, connections=args.connections, threads=args.threads)
            # Rounds interleave the targets, so each round's ratio compares runs made under
            # the same conditions; the figure is the median round.
            rounds: list[dict[str, dict[str, float]]] = []
            for _ in range(args.rounds):
                rounds.append(
                    {
                        name: run_wrk(
                            port,
                            seconds=args.seconds,
                            connections=args.connections,
                            threads=args.threads,
                        )
                        for name, port in targets.items()
                    }
                )
            per_round = [r["berth"]["rps"] / max(r["nginx"]["rps"], 1) for r in rounds]
            median_round = rounds[
                sorted(range(len(rounds)), key=per_round.__getitem__)[len(rounds) // 2]
            ]
            for name, port in targets.items():
                results[name] = {
                    "throughput": median_round[name],
                    "latency": run_wrk(port, seconds=args.seconds, connections=1, threads=1),
                }
    berth, nginx_r, direct = results["berth"], results["nginx"], results["direct"]
    ratios = {
        "throughput_vs_nginx": berth["throughput"]["rps"] / max(nginx_r["throughput"]["rps"], 1),
        "throughput_vs_nginx_rounds": per_round,
        "added_p50_ms": berth["latency"]["p50_ms"] - direct["latency"]["p50_ms"],
        "added_p99_ms": berth["latency"]["p99_ms"] - direct["latency"]["p99_ms"],
        "nginx_added_p50_ms": nginx_r["latency"]["p50_ms"] - direct["latency"]["p50_ms"],
        "nginx_added_p99_ms": nginx_r["latency"]["p99_ms"] - direct["latency"]["p99_ms"],
    }
    results["ratios"] = ratios
    print(
        f"{'target':<8} {'req/s':>10} {'p50 (c=N)':>10} {'p99 (c=N)':>10} "
        f"{'p50 (c=1)':>10} {'p99 (c=1)':>10} {'errors':>7}"
    )
    for name in ("direct", "nginx", "berth"):
        t, lat = results[name]["throughput"], results[name]["latency"]
        print(
            f"{name:<8} {t['rps']:>10.0f} {t['p50_ms']:>9.2f}ms {t['p99_ms']:>9.2f}ms "
            f"{lat['p50_ms']:>9.3f}ms {lat['p99_ms']:>9.3f}ms {t['errors'] + lat['errors']:>7.0f}"
        )
    print(
        f"berth/nginx throughput: {ratios['throughput_vs_nginx']:.2f}x, the median of "
        f"{len(per_round)} rounds ({', '.join(f'{r:.2f}' for r in per_round)}; target >= 0.5x); "
        f"added p50 {ratios['added_p50_ms']:.3f} ms (target <= 1 ms), "
        f"added p99 {ratios['added_p99_ms']:.3f} ms; nginx adds p50 "
        f"{ratios['nginx_added_p50_ms']:.3f} ms, p99 {ratios['nginx_added_p99_ms']:.3f} ms"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
