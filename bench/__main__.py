"""`python -m bench`: start berth with default settings, measure, print a table, write JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.engine import BENCH_LABEL, Engine
from bench.runner import (
    BERTH,
    BERTH_COMPARED,
    ENGINE_SPEC,
    ENGINE_SPEC_BRIDGE,
    ENGINE_SPEC_POLLED,
    FIGURES,
    Bench,
    Results,
)
from bench.stats import figure_record, goal_record, render_breakdown, render_goal, render_table
from berth.config import Settings
from berth.testing.server import BerthServer

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.json"
SETTINGS_SHOWN = (
    "reconcile_interval_seconds",
    "meter_interval_seconds",
    "stop_grace_seconds",
    "crash_backoff_max_seconds",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="berth's latency next to the raw container engine, measured in one run.",
    )
    parser.add_argument("--iterations", type=int, default=10, help="samples per variant (10)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded rounds first (1)")
    parser.add_argument("--poll-ms", type=float, default=20.0, help="poll interval (20 ms)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="give up one sample after this (60 s)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=900.0,
        help="stop starting new rounds after this long overall (900 s)",
    )
    parser.add_argument("--image", default="berth-test/busybox:latest")
    parser.add_argument("--no-cli", action="store_true", help="skip the docker CLI baseline")
    parser.add_argument(
        "--no-anchor",
        action="store_true",
        help="no long-running service beside the samples: berth then removes the user's"
        " network after each deleted service and re-creates it for the next task",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="BERTH_X=VALUE",
        help="a setting for the berth server (default: none, i.e. berth's defaults)",
    )
    parser.add_argument(
        "--compare-src",
        type=Path,
        metavar="DIR",
        help="also measure a berth server run from another source tree (its src directory,"
        " e.g. of a checkout of an earlier commit), interleaved: before/after in one run",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--docker-socket", default=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    )
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0:
        parser.error("--iterations must be >= 1 and --warmup >= 0")
    if args.compare_src is not None and not (args.compare_src / "berth").is_dir():
        parser.error(f"--compare-src {args.compare_src}: no berth package in that directory")
    for item in args.env:
        if "=" not in item or not item.startswith("BERTH_"):
            parser.error(f"--env takes BERTH_NAME=VALUE, got {item!r}")
    return args


def git_describe() -> str:
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


async def measure(
    args: argparse.Namespace,
    servers: list[tuple[BerthServer, str]],
    engine: Engine,
    meta: dict[str, Any],
) -> Results:
    """`servers`: (server, API key) of berth, then of the compared build if any."""
    results = Results()
    network = f"berth-bench-{os.getpid()}"
    await engine.create_network(network, {BENCH_LABEL: "1"})
    apis = [
        httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        for server, key in servers
    ]
    benches = [
        Bench(
            api=api,
            engine=engine,
            image=args.image,
            poll=args.poll_ms / 1000,
            timeout=args.timeout,
            use_cli=not args.no_cli and shutil.which("docker") is not None,
            network=network,
            berth_variant=berth_variant,
        )
        for api, berth_variant in zip(apis, (BERTH, BERTH_COMPARED), strict=False)
    ]
    bench = benches[0]
    by_variant = {BERTH_COMPARED: benches[-1]}
    started = time.monotonic()
    anchors: list[tuple[Bench, str]] = []
    try:
        for each in benches:
            if not args.no_anchor:
                anchors.append((each, await each.create_anchor()))
            await each.create_job()
        variants = bench.variants() + ([BERTH_COMPARED] if len(benches) > 1 else [])
        total = args.warmup + args.iterations
        for round_ in range(total):
            if time.monotonic() - started > args.max_seconds:
                meta["stopped_early"] = f"--max-seconds {args.max_seconds:.0f} reached"
                print(f"stopping early: {meta['stopped_early']}", flush=True)
                break
            counted = round_ >= args.warmup
            sink = results if counted else None
            # Rotate the order each round so no variant always runs right after another.
            shift = round_ % len(variants)
            order = variants[shift:] + variants[:shift]
            for variant in order:
                await by_variant.get(variant, bench).service(variant, round_, sink)
            for variant in order:
                await by_variant.get(variant, bench).job(variant, round_, sink)
            label = f"round {round_ + 1 - args.warmup}/{args.iterations}" if counted else "warm-up"
            summary = ""
            if counted and results.series["service_running"][BERTH].samples:
                svc = results.series["service_running"][BERTH].samples[-1] * 1000
                job = (results.series["job_exit"][BERTH].samples or [float("nan")])[-1] * 1000
                summary = f" (berth: service {svc:.0f} ms, job {job:.0f} ms)"
            print(f"{label} done at {time.monotonic() - started:.0f}s{summary}", flush=True)
        for each, anchor in anchors:
            await each.delete_workload(anchor)
        for each in benches:
            if each.job_id:
                await each.delete_workload(each.job_id)
    finally:
        for each, api in zip(benches, apis, strict=True):
            await each.close()
            await api.aclose()
        await engine.remove_all(f"{BENCH_LABEL}=1")
        await engine.remove_networks(f"{BENCH_LABEL}=1")
    return results


async def remove_instance_leftovers(engine: Engine, instance_id: str) -> int:
    label = f"dev.berth.instance={instance_id}"
    removed = await engine.remove_all(label)
    await engine.remove_networks(label)
    return removed


async def engine_info(engine: Engine, image: str) -> dict[str, Any]:
    version = await engine.version()
    if not await engine.image_present(image):
        raise SystemExit(f"image {image!r} is not present locally (build it or pass --image)")
    return {"version": version.get("Version"), "api_version": version.get("ApiVersion")}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    socket_path = args.docker_socket.removeprefix("unix://")
    # The bench acts as an agent (API key); approval gating is a human's wait, not berth's
    # speed, so the company's policy gates nothing here (recorded with the results).
    overrides = {
        "BERTH_DEFAULT_GATED_ACTIONS": "[]",
        # One key polls every --poll-ms, for berth's samples and the polled baseline's:
        # more than the default per-key rate limit allows for long.
        "BERTH_RATE_LIMIT_PER_SECOND": "0",
    }
    overrides.update(item.split("=", 1) for item in args.env)
    defaults = {name: Settings.model_fields[name].default for name in SETTINGS_SHOWN}
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "iterations": args.iterations,
        "warmup": args.warmup,
        "poll_ms": args.poll_ms,
        "image": args.image,
        "anchor_service": not args.no_anchor,
        "berth_commit": git_describe(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "server_settings": {"defaults": defaults, "overrides": overrides},
    }
    workdir = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    server = BerthServer(workdir / "data", env=overrides)
    servers = [server]
    if args.compare_src is not None:
        source = str(args.compare_src.resolve())
        meta["compared_src"] = source
        servers.append(BerthServer(workdir / "compared", env={**overrides, "PYTHONPATH": source}))
    began = time.monotonic()

    async def session() -> Results:
        engine = Engine(socket_path)
        try:
            meta["engine"] = await engine_info(engine, args.image)
            keyed = []
            for each in servers:
                await asyncio.to_thread(each.start)
                keyed.append((each, await asyncio.to_thread(each.new_key)))
            return await measure(args, keyed, engine, meta)
        finally:
            for each in servers:
                await asyncio.to_thread(each.stop)
                if (each.data_dir / "instance.id").exists():
                    await remove_instance_leftovers(engine, each.instance_id())
            await engine.close()

    print(
        f"berth bench: {args.iterations} rounds (+{args.warmup} warm-up), poll {args.poll_ms:g} ms,"
        f" image {args.image}, berth at {server.url}, settings "
        f"{overrides or 'default'}",
        flush=True,
    )
    try:
        results = asyncio.run(session())
    except Exception:
        print(f"berth server log tail:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    meta["duration_seconds"] = round(time.monotonic() - began, 1)

    figures = {
        key: figure_record(
            title,
            {v: (labels[v], s) for v, s in results.series[key].items() if s.samples or s.errors},
        )
        for key, (title, labels) in FIGURES.items()
    }
    goal = goal_record(
        figures,
        berth=BERTH,
        spec=ENGINE_SPEC,
        spec_polled=ENGINE_SPEC_POLLED,
        spec_bridge=ENGINE_SPEC_BRIDGE,
        compared=BERTH_COMPARED,
    )
    report = {
        "meta": meta,
        "figures": figures,
        "goal": goal,
        "berth_breakdown_ms": {
            title: {step: series.summary() for step, series in steps.items()}
            for title, steps in results.breakdown.items()
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    engine_meta = meta.get("engine", {})
    print()
    print(
        f"engine {engine_meta.get('version')} (API {engine_meta.get('api_version')}), "
        f"{meta['cpus']} CPUs, berth {meta['berth_commit']}, {meta['duration_seconds']:.0f}s"
    )
    print(render_table(figures))
    print("÷engine, ÷CLI: berth's (or the variant's) p50 over that baseline's p50, same run.")
    print()
    print(render_goal(goal))
    print()
    print(render_breakdown(results.breakdown))
    print(f"\nJSON: {args.output}")
    failed = any(s["errors"] for f in figures.values() for s in f["variants"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
