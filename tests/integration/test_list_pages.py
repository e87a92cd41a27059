"""Every list pages through `?limit=&cursor=` on a real server: walking the pages sees every
item once, in the list's order, across creates and deletes; the Containers API's lists keep
their documented shape for a caller that does not page; bad sizes and cursors are 4xx
naming the parameter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from berth.sdk import Client
from berth.testing.waiting import wait_for
from tests.support.api import create, wait_workload
from tests.support.keys import public_key_only
from tests.support.server import TEST_IMAGE, BerthServer, Tenant

ONCE_A_YEAR = "0 0 1 1 *"


def walk(
    client: httpx.Client,
    path: str,
    field: str,
    params: dict[str, Any],
    between: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Every item of a list, page after page; `between(n)` runs after page n."""
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for page_number in range(1, 100):
        query = dict(params) if cursor is None else {**params, "cursor": cursor}
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body[field]) <= params["limit"]
        seen.extend(body[field])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
        if between is not None:
            between(page_number)
    raise AssertionError("the cursors never end")


def schedule(tenant: Tenant, name: str) -> dict[str, Any]:
    return create(tenant.client, name=name, type="schedule", schedule_expr=ONCE_A_YEAR)


def refused(response: httpx.Response, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["field"] == field, response.text


@pytest.mark.parametrize("scope", ["company", "own"])
def test_walking_the_workload_list_sees_each_once_newest_first(tenant: Tenant, scope: str) -> None:
    path = "/v1/compute" if scope == "company" else f"/v1/users/{tenant.user_id}/compute"
    made = [schedule(tenant, f"w{n}") for n in range(25)]
    newest_first = sorted(made, key=lambda w: (w["created_at"], w["id"]), reverse=True)
    ids = [w["id"] for w in newest_first]
    unseen_deleted = ids[20]

    def change(page: int) -> None:
        if page == 1:
            schedule(tenant, "late")  # newer than the cursor: not in this walk
            assert tenant.client.delete(f"/v1/compute/{ids[0]}").status_code == 200
            assert tenant.client.delete(f"/v1/compute/{unseen_deleted}").status_code == 200

    seen = [w["id"] for w in walk(tenant.client, path, "workloads", {"limit": 7}, change)]
    assert seen == [i for i in ids if i != unseen_deleted]
    whole = tenant.client.get(path).json()
    assert whole["next_cursor"] is None and len(whole["workloads"]) == 24
    assert whole["workloads"][0]["name"] == "late"


def test_the_workload_list_filters_and_each_page_is_answered_for_its_own_parameters(
    tenant: Tenant,
) -> None:
    for n in range(3):
        schedule(tenant, f"nightly-{n}")
    paused = schedule(tenant, "weekly")
    assert tenant.client.post(f"/v1/compute/{paused['id']}/stop").status_code == 200

    def names(**params: Any) -> list[str]:
        response = tenant.client.get("/v1/compute", params=params)
        assert response.status_code == 200, response.text
        return [w["name"] for w in response.json()["workloads"]]

    assert names(name_prefix="nightly-") == ["nightly-2", "nightly-1", "nightly-0"]
    assert names(status="paused") == ["weekly"]
    assert names(type="service") == []
    assert names(type="schedule", status="scheduled", name_prefix="nightly-1") == ["nightly-1"]
    # The same list asked again with other parameters is not the kept answer of the first.
    assert names(limit=1) == ["weekly"]
    assert names(limit=2) == ["weekly", "nightly-2"]
    first = tenant.client.get("/v1/compute", params={"limit": 1}).json()
    second = tenant.client.get("/v1/compute", params={"limit": 1, "cursor": first["next_cursor"]})
    assert [w["name"] for w in second.json()["workloads"]] == ["nightly-2"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"type": "container"}, "type"),
        ({"status": "deleting"}, "status"),
        ({"name_prefix": "Web%"}, "name_prefix"),
    ],
)
def test_a_bad_page_size_or_filter_is_refused_naming_it(
    tenant: Tenant, params: dict[str, Any], field: str
) -> None:
    refused(tenant.client.get("/v1/compute", params=params), 422, field)


@pytest.mark.parametrize("cursor", ["garbage!", "eyJsIjoicnVucyJ9", "x" * 1025])
def test_a_forged_cursor_is_refused_naming_it(tenant: Tenant, cursor: str) -> None:
    refused(tenant.client.get("/v1/compute", params={"cursor": cursor}), 422, "cursor")


def test_a_cursor_of_one_list_is_refused_by_another(tenant: Tenant) -> None:
    schedule(tenant, "a")
    schedule(tenant, "b")
    cursor = tenant.client.get("/v1/compute", params={"limit": 1}).json()["next_cursor"]
    assert cursor is not None
    refused(tenant.client.get("/compute/ssh-keys", params={"cursor": cursor}), 400, "cursor")
    refused(tenant.client.get("/v1/approvals", params={"cursor": cursor}), 422, "cursor")


def test_the_sdk_follows_the_cursors(server: BerthServer, tenant: Tenant) -> None:
    made = [schedule(tenant, f"s{n}")["id"] for n in range(5)]
    client = Client(server.url, api_key=tenant.key)
    try:
        assert [w.id for w in client.compute.iter(page_size=2)] == made[::-1]
        assert [w.id for w in client.compute.list(name_prefix="s")] == made[::-1]
        page = client.compute.page(limit=3)
        assert len(page.workloads) == 3 and page.next_cursor is not None
    finally:
        client.close()


@pytest.mark.engine
def test_walking_a_jobs_runs_sees_each_once_newest_first(tenant: Tenant) -> None:
    job = create(tenant.client, name="j", type="job", command="true")
    for n in range(3):
        wait_workload(
            tenant.client,
            job["id"],
            lambda w: bool(w["recent_runs"]) and w["recent_runs"][0]["status"] == "succeeded",
            what="the job's latest run succeeded",
        )
        if n < 2:
            assert tenant.client.post(f"/v1/compute/{job['id']}/run").status_code == 201
    whole = tenant.client.get(f"/v1/compute/{job['id']}/runs").json()
    assert len(whole["runs"]) == 3 and whole["next_cursor"] is None
    path = f"/v1/compute/{job['id']}/runs"
    assert walk(tenant.client, path, "runs", {"limit": 1}) == whole["runs"]
    refused(tenant.client.get(path, params={"limit": 0}), 422, "limit")
    refused(tenant.client.get(path, params={"cursor": "nope"}), 422, "cursor")


def test_walking_the_ssh_keys_sees_each_once_and_the_documented_shape_stays(
    tenant: Tenant,
) -> None:
    added = []
    for n in range(9):
        response = tenant.client.post(
            "/compute/ssh-keys", json={"name": f"k{n}", "public_key": public_key_only()}
        )
        assert response.status_code == 201, response.text
        added.append(response.json()["id"])

    def change(page: int) -> None:
        if page == 1:
            assert tenant.client.delete(f"/compute/ssh-keys/{added[0]}").status_code == 200
            assert tenant.client.delete(f"/compute/ssh-keys/{added[5]}").status_code == 200

    seen = walk(tenant.client, "/compute/ssh-keys", "ssh_keys", {"limit": 3}, change)
    assert [k["name"] for k in seen] == [f"k{n}" for n in range(9) if n != 5]
    documented = tenant.client.get("/compute/ssh-keys").json()
    assert set(documented) == {"ssh_keys"} and len(documented["ssh_keys"]) == 7
    refused(tenant.client.get("/compute/ssh-keys", params={"limit": 0}), 400, "limit")
    refused(tenant.client.get("/compute/ssh-keys", params={"cursor": "%%"}), 400, "cursor")


@pytest.fixture
def boxes(tenant: Tenant) -> Iterator[list[str]]:
    """The ids of the boxes a test made, deleted after it."""
    made: list[str] = []
    yield made
    for box_id in made:
        tenant.client.delete(f"/compute/containers/{box_id}")


@pytest.mark.engine
def test_walking_the_containers_sees_each_once_oldest_first(
    tenant: Tenant, boxes: list[str]
) -> None:
    key = {"name": "laptop", "public_key": public_key_only()}
    key_id = tenant.client.post("/compute/ssh-keys", json=key).json()["id"]
    for n in range(3):  # the container quota
        response = tenant.client.post(
            "/compute/containers", json={"name": f"box-{n}", "ssh_key_ids": [key_id]}
        )
        assert response.status_code == 201, response.text
        boxes.append(response.json()["id"])

    def change(page: int) -> None:
        if page == 1:
            assert tenant.client.delete(f"/compute/containers/{boxes[1]}").status_code == 200

    seen = walk(tenant.client, "/compute/containers", "containers", {"limit": 1}, change)
    assert [box["id"] for box in seen] == [boxes[0], boxes[2]]
    documented = wait_for(
        lambda: (
            (body := tenant.client.get("/compute/containers").json())
            and len(body["containers"]) == 2
            and body
        ),
        what="the deleted box gone from the list",
    )
    assert set(documented) == {"containers"}
    refused(tenant.client.get("/compute/containers", params={"limit": 501}), 400, "limit")
    refused(tenant.client.get("/compute/containers", params={"cursor": "e30"}), 400, "cursor")


@pytest.fixture(scope="module")
def gated_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    srv = BerthServer(
        Path(tmp_path_factory.mktemp("gated")) / "data",
        env={"BERTH_DEFAULT_GATED_ACTIONS": '["create"]'},
    )
    srv.start()
    yield srv
    srv.stop()


def test_walking_the_approvals_sees_pending_first_then_newest_first(
    gated_server: BerthServer,
) -> None:
    agent = gated_server.new_tenant()
    requested = []
    for n in range(7):
        body = {"name": f"a{n}", "type": "schedule", "image": TEST_IMAGE}
        response = agent.client.post("/v1/compute", json={**body, "schedule_expr": ONCE_A_YEAR})
        assert response.status_code == 202, response.text
        requested.append(response.json()["approval_id"])
    token = gated_server.session_token(agent.user_id)
    with httpx.Client(
        base_url=gated_server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as human:
        for approval_id in (requested[1], requested[4]):
            response = human.post(f"/v1/approvals/{approval_id}/reject", json={})
            assert response.status_code == 200, response.text
        seen = [a["id"] for a in walk(human, "/v1/approvals", "approvals", {"limit": 2})]
        pending = [a for a in reversed(requested) if a not in (requested[1], requested[4])]
        assert seen == [*pending, requested[4], requested[1]]
        only_pending = walk(human, "/v1/approvals", "approvals", {"limit": 3, "status": "pending"})
        assert [a["id"] for a in only_pending] == pending
        refused(human.get("/v1/approvals", params={"limit": 0}), 422, "limit")
        refused(human.get("/v1/approvals", params={"cursor": "AAAA"}), 422, "cursor")
    agent.client.close()
