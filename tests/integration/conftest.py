"""Integration fixtures: one real berth server per session (costs ~2 s to start), a fresh
user per test (so tests never see each other's workloads), and helpers to wait on state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_for
from tests.support.server import BerthServer, Tenant


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    srv = BerthServer(Path(tmp_path_factory.mktemp("berth")) / "data")
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


@pytest.fixture
def crashable(tmp_path: Path) -> Iterator[BerthServer]:
    """A server of the test's own (~2 s to start), for tests that kill and restart it."""
    srv = BerthServer(tmp_path / "data", env={"BERTH_LOG_LEVEL": "info"})
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


@pytest.fixture
def tenant(server: BerthServer) -> Iterator[Tenant]:
    t = server.new_tenant()
    yield t
    # Dev boxes too: a rule port left open would be refused to the next server that wants it.
    for box in t.client.get("/compute/containers").json().get("containers", []):
        t.client.delete(f"/compute/containers/{box['id']}")
    for workload in t.client.get("/v1/compute").json().get("workloads", []):
        t.client.delete(f"/v1/compute/{workload['id']}")
    t.client.close()


def workload_state(client: httpx.Client, workload_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/compute/{workload_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_workload(
    client: httpx.Client,
    workload_id: str,
    predicate: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 30,
    what: str = "",
) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    def probe() -> dict[str, Any] | None:
        state = workload_state(client, workload_id)
        seen[:] = [state]
        return state if predicate(state) else None

    try:
        return wait_for(probe, timeout=timeout, interval=0.2, what=what or "workload state")
    except AssertionError as exc:
        last = seen[0] if seen else {}
        summary = {k: last.get(k) for k in ("status", "status_reason", "running_tasks")}
        runs = [
            (r["status"], r["exit_code"], r["status_reason"]) for r in last.get("recent_runs", [])
        ]
        raise AssertionError(f"{exc}; workload {workload_id}: {summary}, runs {runs[:5]}") from None


def create(client: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("image", "berth-test/busybox:latest")
    response = client.post("/v1/compute", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
