"""Jobs: run to completion, record exit codes, usage and output, time out, fail clearly."""

from __future__ import annotations

from datetime import datetime

import pytest

from berth.testing.waiting import wait_for
from tests.support.api import create, wait_workload
from tests.support.server import BerthServer, Tenant

pytestmark = pytest.mark.engine


def finished(state: dict) -> bool:  # type: ignore[type-arg]
    runs = state["recent_runs"]
    return bool(runs) and runs[0]["status"] not in ("pending", "running")


def test_a_job_runs_once_and_records_its_exit_code_usage_and_output(tenant: Tenant) -> None:
    job = create(
        tenant.client,
        name="report",
        type="job",
        command="echo out-line; echo err-line >&2; exit 3",
        cpu=0.5,
        memory_mb=128,
    )
    assert job["status"] == "pending"
    assert job["url"] is None
    state = wait_workload(tenant.client, job["id"], finished, what="the job to finish")

    run = state["recent_runs"][0]
    assert (run["status"], run["exit_code"], run["trigger"]) == ("failed", 3, "create")
    assert state["status"] == "failed" and "code 3" in state["status_reason"]
    assert run["vcpu_seconds"] >= 0 and run["started_at"] and run["finished_at"]

    logs = tenant.client.get(f"/v1/compute/{job['id']}/runs/{run['id']}/logs").json()
    # The engine copies the two streams independently, so only each stream's order is fixed.
    assert sorted((e["stream"], e["message"]) for e in logs["events"]) == [
        ("stderr", "err-line"),
        ("stdout", "out-line"),
    ]
    assert logs["live"] is False
    latest = tenant.client.get(f"/v1/compute/{job['id']}/logs").json()
    assert latest["run_id"] == run["id"] and len(latest["events"]) == 2


def test_run_now_starts_another_run_and_runs_lists_newest_first(tenant: Tenant) -> None:
    job = create(tenant.client, name="again", type="job", command=["sh", "-c", "exit 0"])
    wait_workload(tenant.client, job["id"], finished)
    response = tenant.client.post(f"/v1/compute/{job['id']}/run")
    assert response.status_code == 201, response.text
    second = response.json()
    assert second["trigger"] == "manual"

    state = wait_workload(
        tenant.client,
        job["id"],
        lambda s: s["recent_runs"][0]["id"] == second["id"] and finished(s),
    )
    assert state["status"] == "succeeded"
    runs = tenant.client.get(f"/v1/compute/{job['id']}/runs").json()["runs"]
    assert next(r["id"] for r in runs) == second["id"]
    assert [r["exit_code"] for r in runs] == [0, 0]


def test_short_runs_keep_the_engines_times_and_are_billed_the_one_second_minimum(
    server: BerthServer, tenant: Tenant
) -> None:
    """`true` exits while the engine is still starting it; each of five runs must still
    show a start before its finish and be billed one second (not nothing)."""
    cpu, memory_mb = 0.5, 256
    job = create(
        tenant.client, name="instant", type="job", command="true", cpu=cpu, memory_mb=memory_mb
    )
    wait_workload(tenant.client, job["id"], finished)
    for _ in range(4):
        started = tenant.client.post(f"/v1/compute/{job['id']}/run")
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
        wait_workload(
            tenant.client,
            job["id"],
            lambda s, run_id=run_id: s["recent_runs"][0]["id"] == run_id and finished(s),
        )
    runs = tenant.client.get(f"/v1/compute/{job['id']}/runs").json()["runs"]
    assert len(runs) == 5

    settings = server.settings()
    gib = memory_mb / 1024
    minimum = cpu * settings.price_per_vcpu_second + gib * settings.price_per_gb_second
    for run in runs:
        assert (run["status"], run["exit_code"]) == ("succeeded", 0), run
        started_at = datetime.fromisoformat(run["started_at"])
        finished_at = datetime.fromisoformat(run["finished_at"])
        assert datetime.fromisoformat(run["created_at"]) <= started_at < finished_at, run
        assert 0 < run["duration_seconds"] < 1, run  # it really ran briefly...
        assert run["vcpu_seconds"] == pytest.approx(cpu), run  # ...and is billed 1 s
        assert run["gb_seconds"] == pytest.approx(gib), run
        # Money is whole micro-credits: the price rounded to the nearest, halves to even.
        assert run["credits"] == round(minimum * 1_000_000) / 1_000_000, run


def test_a_run_past_its_timeout_is_stopped_and_marked_timed_out(tenant: Tenant) -> None:
    job = create(tenant.client, name="slow", type="job", command="sleep 60", timeout_seconds=1)
    state = wait_workload(tenant.client, job["id"], finished, timeout=40)
    assert state["recent_runs"][0]["status"] == "timed_out"


def test_an_image_that_does_not_exist_fails_the_run_with_a_message(tenant: Tenant) -> None:
    job = create(tenant.client, name="ghost", type="job", image="berth-test/no-such-image:1")
    state = wait_workload(tenant.client, job["id"], finished, timeout=40)
    run = state["recent_runs"][0]
    assert run["status"] == "failed"
    assert "berth-test/no-such-image:1" in run["status_reason"]
    assert "not found" in run["status_reason"]


def test_following_logs_streams_lines_as_the_task_prints_them(tenant: Tenant) -> None:
    job = create(
        tenant.client,
        name="ticker",
        type="job",
        command="for i in 1 2 3; do echo tick $i; sleep 0.5; done",
    )
    lines = []
    with tenant.client.stream(
        "GET", f"/v1/compute/{job['id']}/logs", params={"follow": "true"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        for line in response.iter_lines():
            lines.append(line)
    assert lines == ["tick 1", "tick 2", "tick 3"]


def test_deleting_a_job_stops_its_run_and_removes_its_container(
    tenant: Tenant, server: BerthServer
) -> None:
    job = create(tenant.client, name="doomed", type="job", command="sleep 300")
    wait_workload(tenant.client, job["id"], lambda s: s["running_tasks"] == 1)
    assert tenant.client.delete(f"/v1/compute/{job['id']}").json() == {
        "id": job["id"],
        "deleted": True,
    }
    assert tenant.client.get(f"/v1/compute/{job['id']}").status_code == 404

    def gone() -> bool:
        return not any(job["id"] in c["Labels"] for c in server.containers())

    wait_for(gone, timeout=30, what="the job's container to be removed")


def test_runs_of_unknown_workloads_are_404(tenant: Tenant) -> None:
    response = tenant.client.get("/v1/compute/nope/runs")
    assert response.status_code == 404
    assert response.json()["error"] == "workload nope not found"
