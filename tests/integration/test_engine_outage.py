"""The container engine goes away under berth and comes back.

A private dockerd (see `private_engine.py`; the machine's main engine is never touched) is
killed (SIGKILL, or stopped with SIGTERM) while berth runs a service and has finished a job.
While it is away, berth stays up and says so: `GET /v1/system` reports the engine unreachable
with what to do, reads answer, calls that only change desired state succeed, and calls that
need the engine get a 503 naming it (never a 500). When the engine returns on the same data
root, everything converges: the service is back at its (changed) replicas on the secret set
during the outage, the job created during the outage runs, and no task is left over.

The server runs with a 30 s reconcile interval, longer than the convergence deadline, so the
recovery proven here is the reconciler's and the event watcher's own (they retry the engine
every few seconds), not the periodic pass.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from berth.testing.waiting import wait_for
from tests.support.api import create, wait_workload
from tests.support.private_engine import PrivateEngine
from tests.support.server import BerthServer, Tenant

pytestmark = pytest.mark.engine

HTTPD = 'mkdir -p /www && echo "hello $GREETING" > /www/index.html && exec httpd -f -p 8080 -h /www'
DETECTION_DEADLINE = 15.0
CONVERGENCE_DEADLINE = 25.0
"""Below the server's 30 s reconcile interval: convergence must not wait for it."""


@pytest.fixture
def engine() -> Iterator[PrivateEngine]:
    """A private dockerd with the test image (~1 s); killed and removed afterwards."""
    private = PrivateEngine()
    try:
        private.start()
        private.import_busybox("berth-test/busybox")
        yield private
    finally:
        private.cleanup()


@pytest.fixture
def berth_on_engine(engine: PrivateEngine, tmp_path: Path) -> Iterator[BerthServer]:
    srv = BerthServer(
        tmp_path / "data",
        env={"BERTH_DOCKER_HOST": engine.host, "BERTH_RECONCILE_INTERVAL_SECONDS": "30"},
    )
    srv.start()
    yield srv
    srv.stop()


def through_gateway(server: BerthServer, workload_id: str) -> str | None:
    try:
        response = httpx.get(
            f"http://127.0.0.1:{server.gateway_port}/",
            headers={"Host": f"{workload_id}.localhost"},
            timeout=10,
        )
    except httpx.HTTPError:
        return None
    return response.text.strip() if response.status_code == 200 else None


def engine_status(api: httpx.Client) -> dict[str, Any]:
    response = api.get("/v1/system")
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()["engine"]
    return status


@pytest.mark.timeout(300)
def test_engine_outages_are_reported_and_berth_converges_when_the_engine_returns(
    engine: PrivateEngine, berth_on_engine: BerthServer
) -> None:
    server = berth_on_engine
    tenant = server.new_tenant(credits=1000)
    api = tenant.client
    done_job = create(api, name="before", type="job", command="echo kept-output")
    wait_workload(api, done_job["id"], lambda s: s["status"] == "succeeded", timeout=60)
    svc = create(
        api, name="web", type="service", command=HTTPD, port=8080, replicas=2, env={"GREETING": "a"}
    )
    wait_workload(api, svc["id"], lambda s: s["running_tasks"] == 2, timeout=60)
    assert wait_for(lambda: through_gateway(server, svc["id"]), timeout=20) == "hello a"
    assert engine_status(api) == {"reachable": True, "error": None}

    # A graceful stop first (the engine ends its tasks as it goes), then a crash.
    for number, (stop_signal, replicas) in enumerate(((signal.SIGTERM, 3), (signal.SIGKILL, 2))):
        outage(
            server,
            engine,
            tenant,
            Outage(
                stop_signal=stop_signal,
                service_id=svc["id"],
                done_job_id=done_job["id"],
                replicas=replicas,
                greeting=f"during-{number}",
                generation=2 + number,
            ),
        )


@dataclass(frozen=True)
class Outage:
    stop_signal: signal.Signals
    service_id: str
    done_job_id: str
    replicas: int
    """What the service is scaled to during the outage."""
    greeting: str
    """The secret set during the outage, which the service serves once rolled."""
    generation: int
    """The service's generation once that secret is set."""


def outage(server: BerthServer, engine: PrivateEngine, tenant: Tenant, plan: Outage) -> None:
    api = tenant.client
    engine.kill(plan.stop_signal)
    lost_at = time.monotonic()
    down = wait_for(
        lambda: (status := engine_status(api)) and not status["reachable"] and status,
        timeout=DETECTION_DEADLINE,
        what="berth to report the engine unreachable",
    )
    detected = time.monotonic() - lost_at
    assert str(engine.socket) in down["error"] and "start the engine" in down["error"]

    if plan.stop_signal is signal.SIGTERM:
        # A graceful stop ends the tasks first: berth records each as a finished run.
        wait_workload(api, plan.service_id, lambda s: s["running_tasks"] == 0, timeout=30)
    job_id = assert_berth_serves_during_the_outage(
        server, tenant, plan, tasks_recorded_running=plan.stop_signal is signal.SIGKILL
    )

    engine.start()
    back_at = time.monotonic()
    wait_for(lambda: engine_status(api)["reachable"], timeout=DETECTION_DEADLINE)
    noticed = time.monotonic() - back_at
    wait_workload(
        api,
        plan.service_id,
        lambda s: (
            s["status"] == "running"
            and s["running_tasks"] == plan.replicas
            and s["generation"] == plan.generation
        ),
        timeout=CONVERGENCE_DEADLINE,
        what="the service back at its new replicas and generation",
    )
    state = wait_workload(
        api,
        job_id,
        lambda s: s["status"] == "succeeded",
        timeout=CONVERGENCE_DEADLINE,
        what="the job created during the outage to run",
    )
    converged = time.monotonic() - back_at
    logs = api.get(f"/v1/compute/{job_id}/runs/{state['recent_runs'][0]['id']}/logs")
    assert [e["message"] for e in logs.json()["events"]] == [f"made-{plan.greeting}"]
    served = wait_for(
        lambda: through_gateway(server, plan.service_id) == f"hello {plan.greeting}",
        timeout=20,
        what="the gateway to serve the rolled service",
    )
    assert served

    # The tasks the engine's stop ended are finished runs with a result, and gone from it.
    runs = api.get(f"/v1/compute/{plan.service_id}/runs?limit=50").json()["runs"]
    assert all(r["status"] in ("running", "failed", "stopped") for r in runs)
    assert all(r["finished_at"] for r in runs if r["status"] != "running")
    instance = f"dev.berth.instance={server.instance_id()}"
    wait_for(
        lambda: (
            sorted(c["State"] for c in engine.containers(instance)) == ["running"] * plan.replicas
        ),
        timeout=CONVERGENCE_DEADLINE,
        what="the engine to hold exactly the service's tasks",
    )
    print(
        f"\n[{plan.stop_signal.name}] outage reported after {detected:.2f}s; engine seen back "
        f"after {noticed:.2f}s; service and job converged {converged:.2f}s after it returned"
    )


def assert_berth_serves_during_the_outage(
    server: BerthServer, tenant: Tenant, plan: Outage, *, tasks_recorded_running: bool
) -> str:
    """Reads and desired-state changes work, engine calls are refused clearly; returns the
    id of a job created during the outage."""
    api = tenant.client
    assert httpx.get(server.url + "/healthz", timeout=5).text == "ok"
    # Reads answer from the store; a finished run's output from the archive.
    assert api.get("/v1/compute").status_code == 200
    assert api.get(f"/v1/compute/{plan.service_id}").status_code == 200
    assert api.get(f"/v1/compute/{plan.service_id}/runs").status_code == 200
    archived = api.get(f"/v1/compute/{plan.done_job_id}/logs").json()
    assert [e["message"] for e in archived["events"]] == ["kept-output"]

    # Desired-state changes are acknowledged; they converge once the engine is back.
    job = create(api, name=f"job-{plan.greeting}", type="job", command=f"echo made-{plan.greeting}")
    scaled = api.post(f"/v1/compute/{plan.service_id}/scale", json={"count": plan.replicas})
    assert scaled.status_code == 200, scaled.text
    secret = api.post(
        f"/v1/compute/{plan.service_id}/secrets", json={"key": "GREETING", "value": plan.greeting}
    )
    assert secret.status_code == 200, secret.text

    # What needs the engine now is refused at once, never with a 500. After a SIGKILL berth
    # still records the tasks as running (nothing could observe their end): a 503 says the
    # engine is away. A stopping engine ended them first, and berth recorded that: the
    # replacements cannot start, so exec does not wait for them (503), or, while the service
    # backs off and has none, says nothing runs (409).
    executed = api.post(f"/v1/compute/{plan.service_id}/exec", json={"command": "echo hi"})
    if not tasks_recorded_running:
        if executed.status_code == 409:
            assert "start it first" in executed.json()["error"], executed.text
        else:
            assert executed.status_code == 503, executed.text
            assert executed.json()["code"] == "engine_unavailable"
        return str(job["id"])
    assert executed.status_code == 503, executed.text
    assert executed.json()["code"] == "engine_unavailable"
    assert "cannot be reached" in executed.json()["error"]
    assert executed.headers["Retry-After"]
    # The secret set above rolls the service: its recorded tasks are being replaced, and the
    # replacement cannot start, so no shell is brokered into either.
    shell = api.post(f"/v1/compute/{plan.service_id}/shell", json={})
    assert shell.status_code == 503, shell.text
    assert shell.json()["code"] == "engine_unavailable"
    return str(job["id"])
