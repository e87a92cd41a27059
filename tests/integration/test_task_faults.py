"""Misbehaving tasks are contained: one that crash-loops, one that ignores SIGTERM, one that
fills its memory limit and one that floods its output, all at once, beside a healthy service
that keeps answering through the gateway while berth's API stays responsive.

(test_services.py already shows the back-off growing between crashes one by one, and
test_docker_runtime.py the engine's OOM flag; this suite runs the faults together, through
berth's API, and watches the bystanders.)
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from berth.testing.waiting import wait_for
from tests.support.api import create, wait_workload
from tests.support.server import BerthServer, Tenant

pytestmark = pytest.mark.engine

STOP_GRACE = 2.0
LOG_CAP = 256 * 1024
"""BERTH_LOG_MAX_BYTES here: what the engine keeps of a task's output, and the archive."""
HTTPD = 'mkdir -p /www && echo "healthy" > /www/index.html && exec httpd -f -p 8080 -h /www'
FLOOD_LINE = "flood line: all work and no play makes berth a dull boat\n"
FLOOD = f"while :; do yes '{FLOOD_LINE.strip()}'; done"
IGNORES_TERM = "trap '' TERM; echo ignoring-term; while :; do sleep 1; done"
HOG = 'x=$(head -c 64m /dev/zero | tr "\\0" a); echo survived ${#x}'
REQUEST_TIMEOUT = 10.0


@pytest.fixture
def faulty_server(tmp_path: Path) -> Iterator[BerthServer]:
    """A server of its own (~2 s) with a short stop grace and a small log cap."""
    srv = BerthServer(
        tmp_path / "data",
        env={
            "BERTH_STOP_GRACE_SECONDS": str(STOP_GRACE),
            "BERTH_LOG_MAX_BYTES": str(LOG_CAP),
        },
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


@dataclass
class Prober:
    """Asks the healthy service (through the gateway) and the API, one request at a time
    each, until stopped; remembers every failure and the slowest answers."""

    server: BerthServer
    tenant: Tenant
    service_id: str
    stop: threading.Event = field(default_factory=threading.Event)
    served: int = 0
    api_answers: int = 0
    failures: list[str] = field(default_factory=list)
    slowest_service: float = 0.0
    slowest_api: float = 0.0

    def probe_service(self) -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    response = client.get(
                        f"http://127.0.0.1:{self.server.gateway_port}/",
                        headers={"Host": f"{self.service_id}.localhost"},
                    )
                    outcome = f"{response.status_code} {response.text.strip()[:100]}"
                except httpx.HTTPError as exc:
                    outcome = repr(exc)
                self.slowest_service = max(self.slowest_service, time.monotonic() - started)
                if outcome == "200 healthy":
                    self.served += 1
                else:
                    self.failures.append(f"service: {outcome}")
                self.stop.wait(0.1)

    def probe_api(self) -> None:
        with httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {self.tenant.key}"},
            timeout=REQUEST_TIMEOUT,
        ) as client:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    ok = client.get(f"/v1/compute/{self.service_id}").status_code == 200
                    ok = ok and client.get("/v1/compute").status_code == 200
                except httpx.HTTPError as exc:
                    ok = False
                    self.failures.append(f"api: {exc!r}")
                self.slowest_api = max(self.slowest_api, time.monotonic() - started)
                self.api_answers += ok
                self.stop.wait(0.1)


@pytest.mark.timeout(240)
def test_faulty_tasks_are_contained_and_a_healthy_service_keeps_answering(
    faulty_server: BerthServer,
) -> None:
    server = faulty_server
    tenant = server.new_tenant(credits=10_000)
    api = tenant.client
    healthy = create(api, name="healthy", type="service", command=HTTPD, port=8080)
    wait_workload(api, healthy["id"], lambda s: s["status"] == "running", timeout=60)
    prober = Prober(server, tenant, healthy["id"])
    wait_for(
        lambda: (
            httpx.get(
                f"http://127.0.0.1:{server.gateway_port}/",
                headers={"Host": f"{healthy['id']}.localhost"},
                timeout=REQUEST_TIMEOUT,
            ).status_code
            == 200
        ),
        timeout=20,
        what="the healthy service to answer through the gateway",
    )
    threads = [
        threading.Thread(target=prober.probe_service),
        threading.Thread(target=prober.probe_api),
    ]
    for thread in threads:
        thread.start()
    try:
        crashy = create(api, name="crashy", type="service", command="echo boom; exit 3")
        stubborn = create(api, name="stubborn", type="service", command=IGNORES_TERM)
        hog = create(api, name="hog", type="job", command=HOG, memory_mb=16)
        flood = create(api, name="flood", type="service", command=FLOOD, cpu=0.25)

        assert_oom_is_the_runs_reason(api, hog["id"])
        assert_stop_kills_after_the_grace_period(api, stubborn["id"])
        assert_output_is_bounded(server, api, flood["id"])
        assert_crash_loop_backs_off(api, crashy["id"])
    finally:
        prober.stop.set()
        for thread in threads:
            thread.join(timeout=30)

    assert not prober.failures, prober.failures[:5]
    assert prober.served > 0 and prober.api_answers > 0
    assert prober.slowest_api < REQUEST_TIMEOUT
    print(
        f"\nhealthy service: {prober.served} requests through the gateway, 0 failed, slowest "
        f"{prober.slowest_service:.2f}s; API: {prober.api_answers} answers, slowest "
        f"{prober.slowest_api:.2f}s"
    )


def assert_oom_is_the_runs_reason(api: httpx.Client, job_id: str) -> None:
    state = wait_workload(
        api, job_id, lambda s: s["status"] not in ("pending", "running"), timeout=60
    )
    run = state["recent_runs"][0]
    assert (run["status"], run["exit_code"]) == ("failed", 137), run
    assert run["status_reason"] == "out of memory: the task exceeded its 16 MB limit"
    assert state["status_reason"] == run["status_reason"]
    print(f"\nOOM run: status {run['status']}, exit {run['exit_code']}: {run['status_reason']}")


def assert_stop_kills_after_the_grace_period(api: httpx.Client, service_id: str) -> None:
    wait_workload(api, service_id, lambda s: s["running_tasks"] == 1, timeout=60)
    run_id = api.get(f"/v1/compute/{service_id}/runs").json()["runs"][0]["id"]
    wait_for(
        lambda: any(
            e["message"] == "ignoring-term"
            for e in api.get(f"/v1/compute/{service_id}/runs/{run_id}/logs").json()["events"]
        ),
        timeout=30,
        what="the trap to be set",
    )
    asked = time.monotonic()
    assert api.post(f"/v1/compute/{service_id}/stop").status_code == 200
    state = wait_workload(
        api, service_id, lambda s: s["status"] == "stopped", timeout=STOP_GRACE + 30
    )
    took = time.monotonic() - asked
    run = next(r for r in state["recent_runs"] if r["id"] == run_id)
    # The engine sent SIGTERM, waited out the grace period, then SIGKILL: 128 + 9.
    assert (run["status"], run["exit_code"]) == ("stopped", 137), run
    assert took >= STOP_GRACE * 0.9, f"stopped after {took:.2f}s, before the grace period"
    print(f"SIGTERM-ignoring task: killed (exit 137) {took:.2f}s after the stop")


def assert_output_is_bounded(server: BerthServer, api: httpx.Client, flood_id: str) -> None:
    state = wait_workload(api, flood_id, lambda s: s["running_tasks"] == 1, timeout=60)
    run_id = state["recent_runs"][0]["id"]

    def flooded() -> int:
        size = len(api.get(f"/v1/compute/{flood_id}/logs").content)
        return size if size > LOG_CAP // 2 else 0

    wait_for(flooded, timeout=60, what="the flood to fill a good part of the log cap")
    # Live (from the engine): the engine keeps at most the cap; reading stays quick.
    slowest, largest = 0.0, 0
    for _ in range(5):
        started = time.monotonic()
        response = api.get(f"/v1/compute/{flood_id}/logs")
        slowest = max(slowest, time.monotonic() - started)
        assert response.status_code == 200 and response.json()["live"] is True
        largest = max(largest, len(response.json()["events"]) * len(FLOOD_LINE))
    assert largest <= LOG_CAP, f"{largest} bytes of output kept, cap {LOG_CAP}"

    assert api.post(f"/v1/compute/{flood_id}/stop").status_code == 200
    wait_workload(api, flood_id, lambda s: s["status"] == "stopped", timeout=60)
    archive = server.data_dir / "logs" / f"{run_id}.jsonl"
    wait_for(archive.exists, timeout=30, what="the flood's output to be archived")
    archived = api.get(f"/v1/compute/{flood_id}/runs/{run_id}/logs")
    assert archived.status_code == 200 and archived.json()["live"] is False
    assert archived.json()["events"], "the archive kept nothing"
    assert archive.stat().st_size <= LOG_CAP
    print(
        f"log flood: live GET .../logs at most {largest} bytes of output, slowest "
        f"{slowest:.2f}s; archive {archive.stat().st_size} bytes (cap {LOG_CAP})"
    )


def assert_crash_loop_backs_off(api: httpx.Client, crashy_id: str) -> None:
    state = wait_workload(
        api,
        crashy_id,
        lambda s: len([r for r in s["recent_runs"] if r["exit_code"] == 3]) >= 4,
        timeout=60,
        what="four crashes",
    )
    crashes = sorted(
        (r for r in state["recent_runs"] if r["exit_code"] == 3), key=lambda r: r["created_at"]
    )
    gaps = [
        (parse(later["created_at"]) - parse(earlier["finished_at"])).total_seconds()
        for earlier, later in itertools.pairwise(crashes)
    ]
    # 1 s, 2 s, 4 s... between a crash and its replacement (each at least its back-off).
    assert all(gap >= 0.9 for gap in gaps), gaps
    assert gaps[-1] >= 1.8, gaps
    print(f"crash loop: gaps between a crash and its replacement {[round(g, 2) for g in gaps]}s")


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)
