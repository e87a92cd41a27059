"""A task's end is recorded when it happens, not at the next periodic pass.

The server here reconciles only every minute unless something wakes it, so each wait below
(15 s) can only be met by berth reacting to the engine's events. Listing the engine right
after a task died still shows it running (the engine updates its list once it cleaned up
after the task), so a pass woken by the `die` event alone would miss the exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import create, wait_workload
from tests.support.server import BerthServer, Tenant

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def slow_passes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    data = Path(tmp_path_factory.mktemp("slow-passes")) / "data"
    srv = BerthServer(data, env={"BERTH_RECONCILE_INTERVAL_SECONDS": "60"})
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


@pytest.fixture
def tenant(slow_passes: BerthServer) -> Iterator[Tenant]:
    t = slow_passes.new_tenant()
    yield t
    for workload in t.client.get("/v1/compute").json().get("workloads", []):
        t.client.delete(f"/v1/compute/{workload['id']}")
    t.client.close()


def test_a_job_that_ends_later_is_recorded_as_it_ends(tenant: Tenant) -> None:
    job = create(tenant.client, name="later", type="job", command="sleep 1; exit 3")
    state = wait_workload(
        tenant.client,
        job["id"],
        lambda s: bool(s["recent_runs"]) and s["recent_runs"][0]["exit_code"] is not None,
        timeout=15,
        what="the job's exit code",
    )
    run = state["recent_runs"][0]
    assert (run["status"], run["exit_code"]) == ("failed", 3)


def test_a_service_task_that_crashes_later_is_recorded_and_replaced(tenant: Tenant) -> None:
    svc = create(tenant.client, name="crashes", type="service", command="sleep 1; exit 5")
    state = wait_workload(
        tenant.client,
        svc["id"],
        lambda s: (
            any(r["exit_code"] == 5 for r in s["recent_runs"])
            and any(r["status"] in ("pending", "running") for r in s["recent_runs"])
        ),
        timeout=15,
        what="a crash and its replacement",
    )
    crashed = next(r for r in state["recent_runs"] if r["exit_code"] == 5)
    assert crashed["status"] == "failed"
