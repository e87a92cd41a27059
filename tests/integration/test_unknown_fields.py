"""Unknown body fields, on both APIs: ignored and named in `Warning` headers by default
(as servers decoding with Go's `encoding/json` ignore them), refused with today's 4xx when
the caller asks for strictness (`?strict=true` or `Berth-Strict: true`). Wrong types and
values are refused either way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.keys import new_public_key
from tests.support.server import TEST_IMAGE, Tenant

pytestmark = pytest.mark.engine


def warned_fields(response: httpx.Response) -> list[str]:
    """The fields named by the response's `Warning` headers, each of which must be a
    299 warning in the form Kubernetes sends."""
    fields = []
    for value in response.headers.get_list("warning"):
        prefix, suffix = '299 - "unknown field \\"', '\\""'
        assert value.startswith(prefix) and value.endswith(suffix), value
        fields.append(value[len(prefix) : -len(suffix)])
    return fields


@pytest.fixture
def key_id(tenant: Tenant, tmp_path: Path) -> Iterator[int]:
    response = tenant.client.post(
        "/compute/ssh-keys", json={"name": "laptop", "public_key": new_public_key(tmp_path)}
    )
    assert response.status_code == 201, response.text
    yield response.json()["id"]
    for box in tenant.client.get("/compute/containers").json()["containers"]:
        tenant.client.delete(f"/compute/containers/{box['id']}")


def dashboard_body(key_id: int) -> dict[str, Any]:
    """What the dashboard's create form sends, exactly."""
    return {
        "name": "dash",
        "memory_mb": 512,
        "storage_gb": 5,
        "ssh_key_ids": [key_id],
        "enable_ssh": True,
        "ingress_rules": [{"port": 8080, "target_port": 8080}],
    }


def test_the_dashboards_create_body_is_accepted_naming_its_unknown_fields(
    tenant: Tenant, key_id: int
) -> None:
    response = tenant.client.post("/compute/containers", json=dashboard_body(key_id))
    assert response.status_code == 201, response.text
    assert warned_fields(response) == ["enable_ssh", "ingress_rules"]
    box = response.json()
    assert (box["name"], box["memory_mb"], box["storage_gb"]) == ("dash", 512, 5)
    assert box["ssh_enabled"] is False  # `enable_ssh` is not the document's `ssh_enabled`
    assert tenant.client.get(f"/compute/containers/{box['id']}/ingress").json() == {"rules": []}
    listed = tenant.client.get("/compute/containers")
    assert listed.headers.get_list("warning") == []


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        pytest.param({"strict": "true"}, {}, id="query"),
        pytest.param({}, {"Berth-Strict": "true"}, id="header"),
    ],
)
def test_a_strict_caller_gets_unknown_fields_refused(
    tenant: Tenant, key_id: int, params: dict[str, str], headers: dict[str, str]
) -> None:
    response = tenant.client.post(
        "/compute/containers", json=dashboard_body(key_id), params=params, headers=headers
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "enable_ssh: unknown field" and body["field"] == "enable_ssh"
    assert {d["field"] for d in body["errors"]} == {"enable_ssh", "ingress_rules"}
    assert tenant.client.get("/compute/containers").json() == {"containers": []}


def test_a_wrong_type_is_still_refused_beside_the_warnings(tenant: Tenant, key_id: int) -> None:
    response = tenant.client.post(
        "/compute/containers", json={**dashboard_body(key_id), "memory_mb": "512"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "memory_mb"
    assert warned_fields(response) == ["enable_ssh", "ingress_rules"]
    assert tenant.client.get("/compute/containers").json() == {"containers": []}


@pytest.mark.parametrize(
    ("params", "headers", "field"),
    [
        pytest.param({"strict": "maybe"}, {}, "strict", id="query"),
        pytest.param({}, {"Berth-Strict": "sometimes"}, "Berth-Strict", id="header"),
    ],
)
def test_a_strictness_that_is_not_a_boolean_is_refused(
    tenant: Tenant, key_id: int, params: dict[str, str], headers: dict[str, str], field: str
) -> None:
    response = tenant.client.post(
        "/compute/containers", json=dashboard_body(key_id), params=params, headers=headers
    )
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    job = {"name": "j", "type": "job", "image": TEST_IMAGE, "command": "true"}
    response = tenant.client.post("/v1/compute", json=job, params=params, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert tenant.client.get("/compute/containers").json() == {"containers": []}
    assert tenant.client.get("/v1/compute").json()["workloads"] == []


def test_the_workloads_api_ignores_unknown_fields_the_same_way(tenant: Tenant) -> None:
    schedule = {
        "name": "yearly",
        "type": "schedule",
        "image": TEST_IMAGE,
        "schedule_expr": "0 0 1 1 *",
        "replica": 2,
        "labels": {"team": "a"},
    }
    strict = tenant.client.post("/v1/compute", json=schedule, params={"strict": "true"})
    assert strict.status_code == 422 and strict.json()["field"] == "replica", strict.text
    wrong = tenant.client.post("/v1/compute", json={**schedule, "cpu": "1"})
    assert wrong.status_code == 422 and wrong.json()["field"] == "cpu", wrong.text
    assert tenant.client.get("/v1/compute").json()["workloads"] == []

    created = tenant.client.post("/v1/compute", json=schedule)
    assert created.status_code == 201, created.text
    assert warned_fields(created) == ["replica", "labels"]
    workload_id = created.json()["id"]
    secret = tenant.client.post(
        f"/v1/compute/{workload_id}/secrets", json={"key": "TOKEN", "value": "v", "vaule": "w"}
    )
    assert secret.status_code == 200, secret.text
    assert warned_fields(secret) == ["vaule"]
    refused = tenant.client.post(
        f"/v1/compute/{workload_id}/secrets",
        json={"key": "OTHER", "value": "v", "vaule": "w"},
        headers={"Berth-Strict": "1"},
    )
    assert refused.status_code == 422 and refused.json()["field"] == "vaule", refused.text
    keys = tenant.client.get(f"/v1/compute/{workload_id}/secrets").json()["secrets"]
    assert [k["key"] for k in keys] == ["TOKEN"]


def test_the_openapi_document_declares_both_ways_to_ask_for_strictness(tenant: Tenant) -> None:
    document = tenant.client.get("/openapi.json").json()
    for path in ("/compute/containers", "/v1/compute"):
        operation = document["paths"][path]["post"]
        declared = {(p["in"], p["name"]) for p in operation["parameters"]}
        assert {("query", "strict"), ("header", "Berth-Strict")} <= declared, declared
        # Reads take no strictness (they have no body), only their paging parameters.
        read = {(p["in"], p["name"]) for p in document["paths"][path]["get"].get("parameters", [])}
        assert not {("query", "strict"), ("header", "Berth-Strict")} & read, read
    schemas = document["components"]["schemas"]
    assert "additionalProperties" not in schemas["ContainerCreate"]
    assert "additionalProperties" not in schemas["WorkloadCreate"]
