"""Run retention on a real server: the background controller prunes a job's older finished
runs down to `BERTH_RUN_RETENTION_COUNT`, logs included, and keeps the newest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.testing.waiting import wait_for
from tests.support.api import create, wait_workload
from tests.support.server import BerthServer

pytestmark = pytest.mark.engine


@pytest.fixture
def pruning_server(tmp_path: Path) -> Iterator[BerthServer]:
    srv = BerthServer(
        tmp_path / "data",
        env={"BERTH_RUN_RETENTION_COUNT": "2", "BERTH_RUN_RETENTION_INTERVAL_SECONDS": "0.5"},
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


def test_a_jobs_older_runs_are_pruned_to_the_retention_count(
    pruning_server: BerthServer,
) -> None:
    tenant = pruning_server.new_tenant()
    job = create(tenant.client, name="j", type="job", command="echo done")
    run_ids: list[str] = []
    for _ in range(4):
        state = wait_workload(
            tenant.client,
            job["id"],
            lambda w: bool(w["recent_runs"]) and w["recent_runs"][0]["status"] == "succeeded",
            what="the job's latest run succeeded",
        )
        run_ids.append(state["recent_runs"][0]["id"])
        if len(run_ids) < 4:
            response = tenant.client.post(f"/v1/compute/{job['id']}/run")
            assert response.status_code == 201, response.text
            wait_workload(
                tenant.client,
                job["id"],
                lambda w: w["recent_runs"][0]["id"] not in run_ids,
                what="the new run listed",
            )
    path = f"/v1/compute/{job['id']}/runs"
    kept = wait_for(
        lambda: (
            (ids := [r["id"] for r in tenant.client.get(path).json()["runs"]])
            and len(ids) == 2
            and ids
        ),
        what="the runs pruned to two",
    )
    assert kept == run_ids[:1:-1]
    pruned_logs = tenant.client.get(f"{path}/{run_ids[0]}/logs")
    assert pruned_logs.status_code == 404, pruned_logs.text
    kept_logs = tenant.client.get(f"{path}/{run_ids[-1]}/logs").json()
    assert [e["message"] for e in kept_logs["events"]] == ["done"]
    tenant.client.close()
