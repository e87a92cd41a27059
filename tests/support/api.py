"""Calls on a berth server's API that many tests make: create a workload and wait on its
state, open a shell, check that a request was refused the way the API promises."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from berth.testing.waiting import wait_for
from tests.support.server import TEST_IMAGE, Tenant


def workload_state(client: httpx.Client, workload_id: str) -> dict[str, Any]:
    """GET /v1/compute/{id}, which must answer 200."""
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
    """Poll the workload until `predicate(state)`; its state then. A timeout's message shows
    the last state and runs seen."""
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
    """POST /v1/compute (the test image unless `image` is given), which must answer 201."""
    body.setdefault("image", TEST_IMAGE)
    response = client.post("/v1/compute", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def open_shell(tenant: Tenant, workload_id: str) -> dict[str, Any]:
    """POST .../shell: the answer (`{"session": {...}, "region": ...}`)."""
    response = tenant.client.post(f"/v1/compute/{workload_id}/shell")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_refused(
    response: httpx.Response, *, status: int, field: str | None, code: str | None = None
) -> dict[str, Any]:
    """A 4xx JSON error body naming `field` (or a sub-field of it) in `field` and the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert {"error", "code", "field"} <= body.keys(), body
    assert isinstance(body["error"], str) and body["error"], body
    if code is not None:
        assert body["code"] == code, body
    if field is None:
        assert body["field"] is None, body
    else:
        assert body["field"] == field or str(body["field"]).startswith(field + "."), body
        assert field in body["error"], body
    return body
