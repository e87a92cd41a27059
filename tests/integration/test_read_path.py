"""The API's fast read path keeps every read current: answers are reused only while nothing
in the database changed, credentials are checked on every request, so a change made by
this server or by another process (`berth admin`) shows in the very next answer."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.api import create
from tests.support.server import TEST_IMAGE, BerthServer, Tenant

pytestmark = pytest.mark.engine

ONCE_A_YEAR = "0 0 1 1 *"


def yearly(name: str) -> dict[str, object]:
    return {"name": name, "type": "schedule", "image": TEST_IMAGE, "schedule_expr": ONCE_A_YEAR}


def bearer(server: BerthServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_a_revoked_key_is_refused_at_the_next_request(server: BerthServer) -> None:
    user = server.admin("create-user", "--email", f"revoked-{time.monotonic_ns()}@example.com")
    created = server.admin("create-key", "--user", user["id"])
    tenant = Tenant(user_id=user["id"], key=created["key"], client=bearer(server, created["key"]))
    other = server.admin("create-key", "--user", user["id"])
    with tenant.client, bearer(server, other["key"]) as other_client:
        workload = create(tenant.client, **yearly("kept"))
        for _ in range(3):  # answers for this key and user are warm
            assert tenant.client.get("/v1/compute").status_code == 200
            assert tenant.client.get(f"/v1/compute/{workload['id']}").status_code == 200
        revoked = server.admin("revoke-key", "--key", created["id"])
        assert revoked["id"] == created["id"] and revoked["revoked_at"]
        for path in ("/v1/compute", f"/v1/compute/{workload['id']}", "/compute/containers"):
            response = tenant.client.get(path)
            assert response.status_code == 401, (path, response.text)
            assert response.json()["code"] == "unauthenticated"
        # the user's other key is untouched
        assert [w["name"] for w in other_client.get("/v1/compute").json()["workloads"]] == ["kept"]


def test_reads_show_every_write_at_once(tenant: Tenant) -> None:
    workload = create(tenant.client, **yearly("watched"))
    path = f"/v1/compute/{workload['id']}"
    assert tenant.client.get(path).json()["secret_keys"] == []
    assert tenant.client.get(path).json()["secret_keys"] == []  # answered again unchanged
    body = {"key": "TOKEN", "value": "v"}
    assert tenant.client.post(f"{path}/secrets", json=body).status_code == 200
    assert tenant.client.get(path).json()["secret_keys"] == ["TOKEN"]
    listed = tenant.client.get("/v1/compute").json()["workloads"]
    assert [(w["name"], w["secret_keys"]) for w in listed] == [("watched", ["TOKEN"])]
    assert tenant.client.delete(path).status_code == 200
    assert tenant.client.get(path).status_code == 404
    assert tenant.client.get("/v1/compute").json()["workloads"] == []


def test_a_change_made_by_another_process_shows_in_the_next_read(server: BerthServer) -> None:
    tenant = server.new_tenant()
    with tenant.client:
        workload = create(tenant.client, **yearly("switched"))
        path = f"/v1/compute/{workload['id']}"
        for _ in range(3):
            assert tenant.client.get("/v1/compute").status_code == 200
            assert tenant.client.get(path).status_code == 200
        server.admin("update-user", "--user", tenant.user_id, "--compute", "off")
        assert tenant.client.get("/v1/compute").status_code == 403
        assert tenant.client.get(path).status_code == 403
        server.admin("update-user", "--user", tenant.user_id, "--compute", "on")
        assert tenant.client.get(path).json()["name"] == "switched"
