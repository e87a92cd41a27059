"""Crash safety on the cluster: berth is SIGKILLed while a service runs and a job is
running, and started again. The restarted berth adopts the pods it finds (the service keeps
its pod, none is created twice), records the job's run once with its real exit code and
output, bills it once, and the balance still equals the ledger's sum; a job created right
after the restart runs as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berth.domain import labels
from tests.support import cluster
from tests.support.api import create, wait_workload
from tests.support.replicas import balance_and_ledger
from tests.support.server import BerthServer

pytestmark = [pytest.mark.engine, cluster.needs_cluster]

PODS = "/api/v1/pods"


@pytest.fixture
def crashable_on_cluster(tmp_path: Path) -> Iterator[BerthServer]:
    srv = BerthServer(tmp_path / "data", on_cluster=True)
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


def pod_names(workload_id: str) -> list[str]:
    return sorted(cluster.names(PODS, {labels.WORKLOAD: workload_id}))


def ended(state: dict[str, Any]) -> bool:
    runs = state["recent_runs"]
    return bool(runs) and runs[0]["status"] not in ("pending", "running")


@pytest.mark.timeout(300)
def test_sigkill_on_the_cluster_loses_no_run_and_duplicates_no_pod(
    crashable_on_cluster: BerthServer,
) -> None:
    server = crashable_on_cluster
    tenant = server.new_tenant(credits=1000)
    api = tenant.client
    service = create(api, name="web", type="service", command="exec sleep 3600")
    job = create(api, name="slow", type="job", command="sleep 6; echo finished-after-crash")
    wait_workload(api, service["id"], lambda s: s["running_tasks"] == 1, timeout=90)
    wait_workload(api, job["id"], lambda s: s["status"] == "running", timeout=90)
    service_pods = pod_names(service["id"])
    assert len(service_pods) == 1, service_pods

    server.kill()
    server.start()

    state = wait_workload(api, job["id"], ended, timeout=60, what="the job's run to be settled")
    runs = api.get(f"/v1/compute/{job['id']}/runs").json()["runs"]
    assert len(runs) == 1, runs
    (run,) = runs
    assert run["status"] == "succeeded" and run["exit_code"] == 0, run
    assert run["credits"] > 0, run
    logs = api.get(f"/v1/compute/{job['id']}/runs/{run['id']}/logs").json()["events"]
    assert [e["message"] for e in logs] == ["finished-after-crash"]
    assert state["status"] == "succeeded", state

    # The service's pod was adopted, not replaced.
    wait_workload(api, service["id"], lambda s: s["running_tasks"] == 1, timeout=30)
    assert pod_names(service["id"]) == service_pods
    assert len(api.get(f"/v1/compute/{service['id']}/runs").json()["runs"]) == 1

    balance, ledger = balance_and_ledger(server, tenant.user_id)
    assert balance == ledger
    after = create(api, name="after", type="job", command="echo after")
    wait_workload(api, after["id"], lambda s: s["status"] == "succeeded", timeout=60)
