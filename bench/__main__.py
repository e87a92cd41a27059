"""`python -m bench`: start berth with default settings, measure, print a table, write JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.engine import BENCH_LABEL, Engine
from bench.harness import (
    Rounds,
    add_run_arguments,
    any_errors,
    check_run_arguments,
    engine_line,
    git_describe,
    run_servers,
)
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
    add_run_arguments(parser, iterations=10, poll_ms=20.0, output=DEFAULT_OUTPUT)
    parser.add_argument("--no-cli", action="store_true", help="skip the docker CLI baseline")
    parser.add_argument(
        "--no-anchor",
        action="store_true",
        help="no long-running service beside the samples: berth then removes the user's"
        " network after each deleted service and re-creates it for the next task",
    )
    parser.add_argument(
        "--compare-src",
        type=Path,
        metavar="DIR",
        help="also measure a berth server run from another source tree (its src directory,"
        " e.g. of a checkout of an earlier commit), interleaved: before/after in one run",
    )
    args = parser.parse_args(argv)
    check_run_arguments(parser, args)
    if args.compare_src is not None and not (args.compare_src / "berth").is_dir():
        parser.error(f"--compare-src {args.compare_src}: no berth package in that directory")
    return args


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
    benches = [
        Bench(
            url=server.url,
            key=key,
            engine=engine,
            image=args.image,
            poll=args.poll_ms / 1000,
            timeout=args.timeout,
            use_cli=not args.no_cli and shutil.which("docker") is not None,
            network=network,
            berth_variant=berth_variant,
        )
        for (server, key), berth_variant in zip(servers, (BERTH, BERTH_COMPARED), strict=False)
    ]
    bench = benches[0]
    by_variant = {BERTH_COMPARED: benches[-1]}
    rounds = Rounds(args, meta)
    anchors: list[tuple[Bench, str]] = []
    try:
        for each in benches:
            if not args.no_anchor:
                anchors.append((each, await each.create_anchor()))
            await each.create_job()
        variants = bench.variants() + ([BERTH_COMPARED] if len(benches) > 1 else [])
        for round_ in rounds:
            counted = rounds.counted(round_)
            sink = results if counted else None
            order = rounds.order(variants, round_)
            for variant in order:
                await by_variant.get(variant, bench).service(variant, round_, sink)
            for variant in order:
                await by_variant.get(variant, bench).job(variant, round_, sink)
            summary = ""
            if counted and results.series["service_running"][BERTH].samples:
                svc = results.series["service_running"][BERTH].samples[-1] * 1000
                job = (results.series["job_exit"][BERTH].samples or [float("nan")])[-1] * 1000
                summary = f" (berth: service {svc:.0f} ms, job {job:.0f} ms)"
            rounds.done(round_, summary)
        for each, anchor in anchors:
            await each.delete_workload(anchor)
        for each in benches:
            if each.job_id:
                await each.delete_workload(each.job_id)
    finally:
        for each in benches:
            await each.close()
        await engine.remove_all(f"{BENCH_LABEL}=1")
        await engine.remove_networks(f"{BENCH_LABEL}=1")
    return results


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
    print(
        f"berth bench: {args.iterations} rounds (+{args.warmup} warm-up), poll {args.poll_ms:g} ms,"
        f" image {args.image}, berth at {server.url}, settings "
        f"{overrides or 'default'}",
        flush=True,
    )
    results = run_servers(
        servers,
        workdir,
        socket_path=socket_path,
        image=args.image,
        meta=meta,
        measure=lambda engine, keyed: measure(args, keyed, engine, meta),
    )

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

    print()
    print(engine_line(meta))
    print(render_table(figures))
    print("÷engine, ÷CLI: berth's (or the variant's) p50 over that baseline's p50, same run.")
    print()
    print(render_goal(goal))
    print()
    print(render_breakdown(results.breakdown))
    print(f"\nJSON: {args.output}")
    return 1 if any_errors(figures) else 0


if __name__ == "__main__":
    sys.exit(main())
