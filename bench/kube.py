"""`python -m bench.kube --kubeconfig PATH`: berth on Kubernetes next to a raw Pod.

Three figures, each against a Pod created directly through the API server with berth's own
API client, in the same run, interleaved round by round (ratios of medians):

- **service create → running**: `POST /v1/compute` (a service running httpd on 8080) until
  `GET /v1/compute/{id}` shows a running task. Baseline: `POST` of a Pod until its status
  shows the container started.
- **job create → exit code recorded**: `POST /v1/compute` (a job running `true`) until its
  run is `succeeded`. Baseline: a Pod running `true` until its status shows the container's
  exit code.
- **wake from zero → first response**: a service scaled to zero (put to sleep with `POST
  /stop`, its gated standby pod waiting) gets one `GET /` through berth's HTTP gateway, held
  until the service answers. Baseline: a Pod of httpd created, then `GET` on the pod's IP
  every poll until its first `200`.

"The same spec": every baseline Pod is a copy of the spec of berth's own pod for an anchor
service of the same user (image, command, CPU and memory requests and limits, security
context, grace period), in the same namespace, with only the command changed where the
figure needs it; so a ratio is what berth adds, not what its confinement costs the cluster.

berth runs with its default settings (every `BERTH_*` of the caller's environment is
dropped; `--env` adds settings, recorded in the JSON). Each wait gives up after `--timeout`
seconds; no round starts after `--max-seconds`. At the end the server stops and every
namespace it made, with what it holds, is deleted. Output: a table on stdout and
`bench/results/kube.json`. See bench/README.md.
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

from bench.harness import BenchError, Rounds, git_describe, since
from bench.stats import Series
from berth.domain import labels
from berth.runtime.kubernetes.client import ApiClient, Json, selector_param
from berth.runtime.kubernetes.config import load_config
from berth.testing.server import BerthServer

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "kube.json"
PORT = 8080
HTTPD = "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www"
TARGET = 1.3
"""berth's p50 over the raw Pod's p50, at most (issue 12, "Performance")."""
BENCH_LABEL = "berth-bench"

BERTH, POD = "berth", "raw Pod"
FIGURES = {
    "service": (
        "service create → running",
        {BERTH: "berth: POST /v1/compute → running", POD: "Pod create → container started"},
    ),
    "job": (
        "job create → exit code recorded",
        {BERTH: "berth: POST /v1/compute → succeeded", POD: "Pod create → exit code in status"},
    ),
    "wake": (
        "wake from zero → first 200",
        {BERTH: "berth: held GET through the gateway", POD: "Pod create → GET pod IP 200"},
    ),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.kube", description="berth on Kubernetes next to a raw Pod."
    )
    parser.add_argument("--kubeconfig", required=True, help="the cluster to measure on")
    parser.add_argument("--iterations", type=int, default=8, help="samples per variant (8)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded rounds first (1)")
    parser.add_argument("--poll-ms", type=float, default=20.0, help="poll interval (20 ms)")
    parser.add_argument("--timeout", type=float, default=60.0, help="one wait at most (60 s)")
    parser.add_argument(
        "--max-seconds", type=float, default=900.0, help="no new round after this (900 s)"
    )
    parser.add_argument("--image", default="berth-test/busybox:latest")
    parser.add_argument("--env", action="append", default=[], metavar="BERTH_X=VALUE")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0:
        parser.error("--iterations must be >= 1 and --warmup >= 0")
    for item in args.env:
        if "=" not in item or not item.startswith("BERTH_"):
            parser.error(f"--env takes BERTH_NAME=VALUE, got {item!r}")
    return args


class KubeBench:
    """berth's API and gateway, the API server, and the waits they share (each polls every
    `poll` seconds and gives up after `timeout` with a `BenchError`)."""

    def __init__(self, server: BerthServer, key: str, kube: ApiClient, args: Any) -> None:
        self.server = server
        self.kube = kube
        self.image: str = args.image
        self.poll: float = args.poll_ms / 1000
        self.timeout: float = args.timeout
        self.api = httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        self.http = httpx.AsyncClient(
            limits=httpx.Limits(max_keepalive_connections=0), trust_env=False, timeout=5
        )
        self.gateway = f"http://127.0.0.1:{server.gateway_port}/"
        self.namespace = ""
        self.template: Json = {}
        self.sleeper = ""

    async def close(self) -> None:
        await self.http.aclose()
        await self.api.aclose()

    async def until(self, probe: Callable[[], Awaitable[Any]], what: str) -> Any:
        deadline = time.perf_counter() + self.timeout
        while True:
            started = time.perf_counter()
            found = await probe()
            if found is not None:
                return found
            if time.perf_counter() > deadline:
                raise BenchError(f"{what}: not within {self.timeout:g}s")
            await asyncio.sleep(max(0.0, self.poll - since(started)))

    # -- berth -------------------------------------------------------------------------------

    async def create(self, **body: Any) -> str:
        body = {"image": self.image, "name": f"bench-{uuid.uuid4().hex[:8]}", **body}
        response = await self.api.post("/v1/compute", json=body)
        if response.status_code != 201:
            raise BenchError(f"create answered {response.status_code}: {response.text}")
        return str(response.json()["id"])

    async def state_until(self, workload_id: str, done: Callable[[Json], bool]) -> Json:
        async def probe() -> Json | None:
            state: Json = (await self.api.get(f"/v1/compute/{workload_id}")).json()
            return state if done(state) else None

        found: Json = await self.until(probe, f"{workload_id} to reach its state")
        return found

    async def delete(self, workload_id: str) -> None:
        await self.api.delete(f"/v1/compute/{workload_id}")

    async def berth_pods(self, workload_id: str) -> list[Json]:
        selector = labels.workload_selector(self.server.instance_id(), workload_id)
        response = await self.kube.request(
            "GET", "/api/v1/pods", params={"labelSelector": selector_param(selector)}
        )
        items: list[Json] = response.json().get("items") or []
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    async def setup(self) -> str:
        """An anchor service (keeps the user's namespace; its pod is the baselines' spec)
        and the scale-to-zero service woken each round. The anchor's id."""
        anchor = await self.create(type="service", command=HTTPD, port=PORT)
        await self.state_until(anchor, lambda s: s["running_tasks"] >= 1)
        (pod,) = await self.berth_pods(anchor)
        self.namespace = pod["metadata"]["namespace"]
        spec = dict(pod["spec"])
        for field in ("nodeName", "schedulingGates", "hostname", "subdomain"):
            spec.pop(field, None)
        self.template = spec
        self.sleeper = await self.create(
            type="service",
            command=HTTPD,
            port=PORT,
            scale_to_zero=True,
            idle_timeout_seconds=86400,  # put to sleep by hand each round, never by the timer
        )
        await self.state_until(self.sleeper, lambda s: s["running_tasks"] >= 1)
        return anchor

    async def service_berth(self) -> float:
        t0 = time.perf_counter()
        workload = await self.create(type="service", command=HTTPD, port=PORT)
        try:
            await self.state_until(workload, lambda s: s["running_tasks"] >= 1)
            return since(t0)
        finally:
            await self.delete(workload)

    async def job_berth(self) -> float:
        t0 = time.perf_counter()
        workload = await self.create(type="job", command="true")
        try:
            state = await self.state_until(
                workload,
                lambda s: (
                    bool(s["recent_runs"])
                    and s["recent_runs"][0]["status"] not in ("pending", "running")
                ),
            )
            elapsed = since(t0)
            if state["recent_runs"][0]["exit_code"] != 0:
                raise BenchError(f"the job failed: {state['recent_runs'][0]}")
            return elapsed
        finally:
            await self.delete(workload)

    async def wake_berth(self) -> float:
        response = await self.api.post(f"/v1/compute/{self.sleeper}/stop")
        if response.status_code != 200:
            raise BenchError(f"stop answered {response.status_code}: {response.text}")
        await self.state_until(
            self.sleeper, lambda s: s["status"] == "stopped" and s["running_tasks"] == 0
        )

        async def asleep() -> bool | None:
            pods = await self.berth_pods(self.sleeper)
            gated = [p for p in pods if p["spec"].get("schedulingGates")]
            return True if len(pods) == len(gated) == 1 else None

        await self.until(asleep, "the standby pod alone")
        t0 = time.perf_counter()
        host = {"Host": f"{self.sleeper}.localhost"}
        try:
            answer = await self.http.get(self.gateway, headers=host, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise BenchError(f"held GET failed: {type(exc).__name__}: {exc}") from None
        if answer.status_code != 200:
            raise BenchError(f"held GET answered {answer.status_code}: {answer.text[:300]}")
        return since(t0)

    # -- the raw Pod -------------------------------------------------------------------------

    async def create_pod(self, command: str) -> str:
        """A Pod of the anchor's spec running `command`, created now; its name."""
        name = f"berth-bench-{uuid.uuid4().hex[:10]}"
        spec = json.loads(json.dumps(self.template))
        spec["containers"][0]["command"] = ["/bin/sh", "-c", command]
        spec["containers"][0].pop("args", None)
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {BENCH_LABEL: "1"}},
            "spec": spec,
        }
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        response = await self.kube.request("POST", path, body=body)
        if response.status_code != 201:
            raise BenchError(f"Pod create answered {response.status_code}: {response.text}")
        return name

    async def pod_until(self, name: str, done: Callable[[Json], Any]) -> Any:
        path = f"/api/v1/namespaces/{self.namespace}/pods/{name}"

        async def probe() -> Any:
            pod = await self.kube.get_json(path)
            return None if pod is None else done(pod)

        return await self.until(probe, f"pod {name}")

    async def delete_pod(self, name: str) -> None:
        await self.kube.request(
            "DELETE",
            f"/api/v1/namespaces/{self.namespace}/pods/{name}",
            body={"gracePeriodSeconds": 0},
        )

    async def service_pod(self) -> float:
        t0 = time.perf_counter()
        name = await self.create_pod(HTTPD)
        try:
            await self.pod_until(name, lambda p: True if _container(p, "running") else None)
            return since(t0)
        finally:
            await self.delete_pod(name)

    async def job_pod(self) -> float:
        t0 = time.perf_counter()
        name = await self.create_pod("true")
        try:
            ended = await self.pod_until(name, lambda p: _container(p, "terminated"))
            elapsed = since(t0)
            if ended.get("exitCode") != 0:
                raise BenchError(f"the pod failed: {ended}")
            return elapsed
        finally:
            await self.delete_pod(name)

    async def wake_pod(self) -> float:
        t0 = time.perf_counter()
        name = await self.create_pod(HTTPD)
        try:
            address = await self.pod_until(name, lambda p: p.get("status", {}).get("podIP"))

            async def answered() -> bool | None:
                try:
                    response = await self.http.get(f"http://{address}:{PORT}/")
                except httpx.TransportError:
                    return None
                return True if response.status_code == 200 else None

            await self.until(answered, f"a 200 from pod {name}")
            return since(t0)
        finally:
            await self.delete_pod(name)

    def measures(self) -> dict[str, dict[str, Callable[[], Awaitable[float]]]]:
        return {
            "service": {BERTH: self.service_berth, POD: self.service_pod},
            "job": {BERTH: self.job_berth, POD: self.job_pod},
            "wake": {BERTH: self.wake_berth, POD: self.wake_pod},
        }


def _container(pod: Json, state: str) -> Json | None:
    """The pod's container's `state` entry (`running`, `terminated`) once it has one."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        found = (status.get("state") or {}).get(state)
        if found is not None:
            return dict(found)
    return None


async def measure(
    args: argparse.Namespace, server: BerthServer, key: str, meta: Json
) -> dict[str, dict[str, Series]]:
    series = {figure: {BERTH: Series(), POD: Series()} for figure in FIGURES}
    kube = ApiClient(load_config(args.kubeconfig))
    bench = KubeBench(server, key, kube, args)
    rounds = Rounds(args, meta)
    try:
        anchor = await bench.setup()
        measures = bench.measures()
        for round_ in rounds:
            line = []
            for figure, variants in measures.items():
                for variant in rounds.order(list(variants), round_):
                    try:
                        value = await variants[variant]()
                    except (BenchError, httpx.HTTPError, OSError) as exc:
                        print(f"  ! {figure}/{variant}: {exc}", flush=True)
                        if rounds.counted(round_):
                            series[figure][variant].errors.append(f"round {round_}: {exc}")
                        continue
                    if rounds.counted(round_):
                        series[figure][variant].samples.append(value)
                    line.append(f"{figure} {variant} {value * 1000:.0f} ms")
            rounds.done(round_, f" ({', '.join(line)})")
        for workload in (bench.sleeper, anchor):
            await bench.delete(workload)
    finally:
        await bench.close()
        await kube.close()
    return series


async def remove_namespaces(kubeconfig: str, instance_id: str, own: str) -> None:
    """Delete the server's namespaces (its users' and its own), with all they hold."""
    kube = ApiClient(load_config(kubeconfig))
    try:
        selector = selector_param(labels.instance_selector(instance_id))
        listed = await kube.request("GET", "/api/v1/namespaces", params={"labelSelector": selector})
        names = [item["metadata"]["name"] for item in listed.json().get("items") or []]
        for name in [*names, own]:
            await kube.request("DELETE", f"/api/v1/namespaces/{name}")
    finally:
        await kube.close()


def record(series: dict[str, dict[str, Series]]) -> Json:
    figures: Json = {}
    for figure, (title, variant_labels) in FIGURES.items():
        summaries = {
            v: {"label": variant_labels[v], **series[figure][v].summary()} for v in series[figure]
        }
        berth, raw = summaries[BERTH]["p50_ms"], summaries[POD]["p50_ms"]
        summaries[BERTH]["p50_ratio_vs_raw_pod"] = (
            round(berth / raw, 2) if berth is not None and raw else None
        )
        figures[figure] = {"title": title, "variants": summaries}
    return figures


def render(figures: Json) -> str:
    header = (
        f"{'figure / variant':<46} {'n':>4} {'p50 ms':>8} {'p90 ms':>8} {'÷Pod':>6} {'target':>9}"
    )
    lines = [header, "-" * len(header)]
    for figure in figures.values():
        lines.append(figure["title"])
        for variant, s in figure["variants"].items():
            ratio = s.get("p50_ratio_vs_raw_pod")
            verdict = (
                "" if ratio is None else f"<={TARGET:g} " + ("ok" if ratio <= TARGET else "MISS")
            )
            count = f"{s['n']}" + (f"!{len(s['errors'])}" if s["errors"] else "")
            p50 = "-" if s["p50_ms"] is None else f"{s['p50_ms']:.0f}"
            p90 = "-" if s["p90_ms"] is None else f"{s['p90_ms']:.0f}"
            shown = "" if ratio is None else f"{ratio:.2f}"
            lines.append(f"  {s['label']:<44} {count:>4} {p50:>8} {p90:>8} {shown:>6} {verdict:>9}")
            del variant
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    namespace = f"berth-bench-{uuid.uuid4().hex[:8]}"
    overrides = {
        "BERTH_RUNTIME": "kubernetes",
        "BERTH_KUBECONFIG": str(Path(args.kubeconfig).resolve()),
        "BERTH_KUBERNETES_NAMESPACE": namespace,
        # As `python -m bench`: nothing gated, and one key polling every --poll-ms.
        "BERTH_DEFAULT_GATED_ACTIONS": "[]",
        "BERTH_RATE_LIMIT_PER_SECOND": "0",
    }
    overrides.update(item.split("=", 1) for item in args.env)
    meta: Json = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "iterations": args.iterations,
        "warmup": args.warmup,
        "poll_ms": args.poll_ms,
        "timeout_seconds": args.timeout,
        "image": args.image,
        "target_p50_ratio_vs_raw_pod": TARGET,
        "berth_commit": git_describe(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "server_settings": {
            "overrides": {k: v for k, v in overrides.items() if k != "BERTH_KUBECONFIG"}
        },
    }
    workdir = Path(tempfile.mkdtemp(prefix="berth-bench-kube-"))
    server = BerthServer(workdir / "data", env=overrides)
    print(
        f"berth kube bench: {args.iterations} rounds (+{args.warmup} warm-up), poll"
        f" {args.poll_ms:g} ms, image {args.image}, berth at {server.url}",
        flush=True,
    )
    began = time.monotonic()
    try:
        server.start()
        key = server.new_key()
        series = asyncio.run(measure(args, server, key, meta))
    except Exception:
        print(f"berth server log tail:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        server.stop()
        if (server.data_dir / "instance.id").exists():
            asyncio.run(remove_namespaces(args.kubeconfig, server.instance_id(), namespace))
        shutil.rmtree(workdir, ignore_errors=True)
    meta["duration_seconds"] = round(time.monotonic() - began, 1)
    figures = record(series)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"meta": meta, "figures": figures}, indent=2) + "\n")
    print()
    print(f"{meta['cpus']} CPUs, berth {meta['berth_commit']}, {meta['duration_seconds']:.0f}s")
    print(render(figures))
    print("÷Pod: berth's p50 over the raw Pod's p50, same run, same pod spec.")
    print(f"\nJSON: {args.output}")
    errors = any(s["errors"] for f in figures.values() for s in f["variants"].values())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
