"""Crash safety: SIGKILL berth while creates, runs and deletes are in flight, restart it,
and nothing acknowledged is lost, nothing is orphaned, no finished run loses its result."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from berth.testing.waiting import wait_for
from tests.support.api import create, wait_workload
from tests.support.engine import label_value
from tests.support.server import BerthServer, Tenant

pytestmark = pytest.mark.engine


CREATES_PER_THREAD = 12
RUNS_PER_ROUND = 8
"""Bounded, so each round's work fits a 2-core machine; berth is killed while it is in flight."""


class Traffic:
    """Creates, runs and deletes from several threads; remembers what was acknowledged."""

    def __init__(self, server: BerthServer, tenant: Tenant, job_id: str) -> None:
        self.server = server
        self.key = tenant.key
        self.job_id = job_id
        self.created: dict[str, str] = {}  # id -> type, for every 201
        self.deleted: set[str] = set()  # every 200 on delete
        self.maybe_deleted: set[str] = set()  # deletes sent whose answer the crash cut off
        self.runs: list[str] = []  # every 201 on run
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=5
        )

    def creator(self, prefix: str) -> None:
        with self.client() as client:
            for n in range(CREATES_PER_THREAD):
                if self.stop.is_set():
                    return
                kind = "service" if n % 2 else "job"
                body: dict[str, Any] = {
                    "name": f"{prefix}-{n}",
                    "type": kind,
                    "image": "berth-test/busybox:latest",
                    "command": "exec sleep 600" if kind == "service" else "echo done-$HOSTNAME",
                }
                try:
                    response = client.post("/v1/compute", json=body)
                except httpx.HTTPError:
                    return
                if response.status_code == 201:
                    with self.lock:
                        self.created[response.json()["id"]] = kind
                if n % 3 == 2:
                    self.delete_one(client)

    def delete_one(self, client: httpx.Client) -> None:
        with self.lock:
            candidates = [i for i in self.created if i not in self.deleted]
        if not candidates:
            return
        try:
            response = client.delete(f"/v1/compute/{candidates[0]}")
        except httpx.HTTPError:
            # Committed or not: the kill may fall between the commit and the answer.
            with self.lock:
                self.maybe_deleted.add(candidates[0])
            return
        if response.status_code == 200:
            with self.lock:
                self.deleted.add(candidates[0])

    def runner(self) -> None:
        with self.client() as client:
            for _ in range(RUNS_PER_ROUND):
                if self.stop.is_set():
                    return
                try:
                    response = client.post(f"/v1/compute/{self.job_id}/run")
                except httpx.HTTPError:
                    return
                if response.status_code == 201:
                    with self.lock:
                        self.runs.append(response.json()["id"])


def test_sigkill_during_creates_runs_and_deletes_loses_nothing(crashable: BerthServer) -> None:
    tenant = crashable.new_tenant(credits=10_000)
    api = tenant.client
    finished_job = create(api, name="before", type="job", command="echo kept-output; exit 4")
    before = wait_workload(api, finished_job["id"], lambda s: s["status"] == "failed")
    finished_run = before["recent_runs"][0]
    repeat_job = create(api, name="repeat", type="job", command="echo again")

    for round_number in range(2):
        traffic = Traffic(crashable, tenant, repeat_job["id"])
        threads = [
            threading.Thread(target=traffic.creator, args=(f"r{round_number}a",)),
            threading.Thread(target=traffic.creator, args=(f"r{round_number}b",)),
            threading.Thread(target=traffic.runner),
        ]
        for thread in threads:
            thread.start()
        wait_for(lambda t=traffic: len(t.created) >= 6 and len(t.runs) >= 3, timeout=60)
        # Killed while creates, runs and deletes are still being answered and launched.
        crashable.kill()
        traffic.stop.set()
        for thread in threads:
            thread.join(timeout=10)
        crashable.start()
        assert_converged(crashable, tenant, traffic)

    # A run finished before any crash keeps its exit code and its output.
    runs = api.get(f"/v1/compute/{finished_job['id']}/runs").json()["runs"]
    assert [(r["id"], r["exit_code"]) for r in runs] == [(finished_run["id"], 4)]
    logs = api.get(f"/v1/compute/{finished_job['id']}/runs/{finished_run['id']}/logs").json()
    assert [e["message"] for e in logs["events"]] == ["kept-output"]


def assert_converged(server: BerthServer, tenant: Tenant, traffic: Traffic) -> None:
    api = tenant.client
    for workload_id, kind in traffic.created.items():
        response = api.get(f"/v1/compute/{workload_id}")
        if workload_id in traffic.deleted:
            assert response.status_code == 404, f"deleted {workload_id} came back"
            continue
        if workload_id in traffic.maybe_deleted and response.status_code == 404:
            continue
        assert response.status_code == 200, f"acknowledged create {workload_id} was lost"
        if kind == "service":
            wait_workload(api, workload_id, lambda s: s["status"] == "running", timeout=60)
        else:
            state = wait_workload(
                api,
                workload_id,
                lambda s: s["recent_runs"] and s["recent_runs"][0]["exit_code"] is not None,
                timeout=60,
            )
            assert state["recent_runs"][0]["status"] == "succeeded"

    # Every acknowledged run happened and recorded its exit code and its output.
    runs = {
        r["id"]: r for r in api.get(f"/v1/compute/{traffic.job_id}/runs?limit=500").json()["runs"]
    }
    for run_id in traffic.runs:
        assert run_id in runs, f"acknowledged run {run_id} was lost"

    def all_runs_done() -> bool:
        listed = api.get(f"/v1/compute/{traffic.job_id}/runs?limit=500").json()["runs"]
        return all(r["exit_code"] == 0 for r in listed)

    wait_for(all_runs_done, timeout=90, what="every run of the repeated job to finish")
    some_run = traffic.runs[-1]
    logs = api.get(f"/v1/compute/{traffic.job_id}/runs/{some_run}/logs").json()
    assert [e["message"] for e in logs["events"]] == ["again"]

    # No container is left that no workload owns: the engine holds exactly the live tasks.
    def no_orphans() -> bool:
        live = {w["id"]: w for w in api.get("/v1/compute").json()["workloads"]}
        containers = server.containers()
        owners = [label_value(c["Labels"], "dev.berth.workload") for c in containers]
        expected = sum(w["running_tasks"] for w in live.values())
        return all(owner in live for owner in owners) and len(containers) == expected

    wait_for(no_orphans, timeout=60, what="the engine to hold only owned tasks")
